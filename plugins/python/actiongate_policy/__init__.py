"""The guest SDK for actiongate policy plugins written in Python.

It mirrors the Rust SDK (plugins/sdk): a plugin author writes rules and
nothing else::

    from actiongate_policy import Approval, Classification, Policy, PluginInfo, Risk, Route, export

    class MyPolicy(Policy):
        def describe(self):
            return PluginInfo("my-policy", "0.1.0", ["db.export"])

        def classify(self, action):
            rows = action.params().require("rows", int)
            return Classification(Risk.HIGH if rows > 1000 else Risk.LOW)

        def route(self, action, classification):
            if classification.risk == Risk.LOW:
                return Route.allow()
            return Approval(["data-owners"], quorum=1)

    WitWorld = export(MyPolicy)

The SDK never touches the host: everything a plugin needs arrives in the
`Action`. Raising `PolicyError` (the params accessors do) fails closed as
invalid output with its message; any other exception traps, which fails
closed too, with the exception in the evidence.

Determinism: componentize-py snapshots the interpreter when it builds the
component, so every instance starts from the same `random` state; its
runtime then calls ``random.seed()`` before the first call in an instance.
`export` makes that seeding lazy (`_lazy_random`): the first draw in an
instance seeds from the sandbox's WASI random, seeded by the host from the
action id, so `random` differs per action and repeats on replay, and a
plugin that draws nothing does not pay for seeding (98k fuel).

Cost: every evaluation is a fresh interpreter instance running classify
and route once, so the conversions below run once per action and are kept
to plain attribute and tuple work (no enum calls, no generators), and
`export` runs them warm while the snapshot is taken (`_warm`), so that an
instance starts with their bytecode specialised.
"""

from __future__ import annotations

import datetime as _datetime
import enum as _enum
import json as _json
import types as _types
import typing as _typing

__all__ = [
    "Action",
    "Approval",
    "Classification",
    "Params",
    "PluginInfo",
    "Policy",
    "PolicyError",
    "Principal",
    "Risk",
    "Route",
    "export",
]


class PolicyError(Exception):
    """A reason the plugin cannot decide. Fails closed as invalid output."""


class Risk(_enum.IntEnum):
    """How dangerous an action is, ordered: ``Risk.LOW < Risk.CRITICAL``."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2
    CRITICAL = 3


class PluginInfo:
    """Name, version and the action-kind patterns the plugin is written for."""

    def __init__(self, name: str, version: str, kinds: list[str]):
        self.name = name
        self.version = version
        self.kinds = list(kinds)


class Principal:
    """The authenticated agent (from its API key, never from the request body)."""

    def __init__(self, id: str, attributes: list[tuple[str, str]]):
        self.id = id
        self.attributes = list(attributes)

    def attribute(self, key: str) -> str | None:
        """An attribute the operator attached to the agent, e.g. ``owner``."""
        return _lookup(self.attributes, key)


_MISSING = object()


class Params:
    """Typed access to an action's params (a JSON object). Every error names
    the field, so a failing plugin explains itself in the evidence."""

    def __init__(self, fields: dict):
        self._fields = fields

    @classmethod
    def parse(cls, text: str) -> "Params":
        try:
            value = _json.loads(text)
        except ValueError as e:
            raise PolicyError(f"params are not valid JSON: {e}") from None
        if not isinstance(value, dict):
            raise PolicyError("params must be a JSON object")
        return cls(value)

    def get(self, key: str, type: _typing.Any = _typing.Any, default: _typing.Any = None):
        """The field ``key`` checked against ``type`` (``int``, ``str``,
        ``list[str]``, ``dict[str, int]``, ...); ``default`` when absent or
        null; `PolicyError` when of another type."""
        value = self._fields.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        return _check(value, type, f"params.{key}")

    def require(self, key: str, type: _typing.Any = _typing.Any):
        """Like `get`, but an absent or null field is a `PolicyError`."""
        value = self._fields.get(key)
        if value is None:
            raise PolicyError(f"params.{key} is required")
        return _check(value, type, f"params.{key}")

    def raw(self, key: str):
        """The field's JSON value as parsed, unchecked (``None`` when absent)."""
        return self._fields.get(key)

    def keys(self) -> list[str]:
        return list(self._fields)


class Action:
    """One action an agent asks to perform (the contract's ``action`` record)."""

    def __init__(
        self,
        id: str,
        kind: str,
        agent: Principal,
        resource: str,
        params: str,
        requested_at: str,
        on_behalf_of: str | None = None,
        justification: str | None = None,
        context: list[tuple[str, str]] = (),
    ):
        self.id = id
        self.kind = kind
        self.agent = agent
        self.on_behalf_of = on_behalf_of
        self.resource = resource
        self.params_json = params
        self.justification = justification
        self.context_pairs = list(context)
        self.requested_at_text = requested_at
        self._params: Params | None = None

    def params(self) -> Params:
        """The params, parsed (once). The host guarantees a JSON object."""
        if self._params is None:
            self._params = Params.parse(self.params_json)
        return self._params

    def requested_at(self) -> _datetime.datetime:
        """When the host received the action, as an aware UTC datetime; the
        sandbox clock reads the same instant, so time windows replay."""
        text = self.requested_at_text
        if not text.endswith("Z"):
            raise PolicyError(f"requested-at is not RFC 3339 UTC: {text!r}")
        try:
            instant = _datetime.datetime.fromisoformat(text[:-1] + "+00:00")
        except ValueError:
            raise PolicyError(f"requested-at is not RFC 3339 UTC: {text!r}") from None
        return instant.astimezone(_datetime.timezone.utc)

    def context(self, key: str) -> str | None:
        """A context value the agent supplied, e.g. ``session`` or ``model``."""
        return _lookup(self.context_pairs, key)


class Classification:
    """What `Policy.classify` concludes: a risk, reasons for humans, tags for machines."""

    def __init__(self, risk: Risk = Risk.LOW, reasons: list[str] = (), tags: list[str] = ()):
        self.risk = risk if type(risk) is Risk else Risk(risk)
        self.reasons = list(reasons)
        self.tags = list(tags)

    def raise_to(self, risk: Risk, tag: str, reason: str) -> None:
        """Raises the risk to ``risk`` if it is higher, and records why
        (the Rust SDK's ``raise``, a keyword in Python)."""
        if risk > self.risk:
            self.risk = risk if type(risk) is Risk else Risk(risk)
        self.tags.append(tag)
        self.reasons.append(reason)

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags


class Route:
    """What should happen to an action: `Route.allow()`, `Route.deny(reason)`
    or an `Approval`."""

    def __init__(self, name: str, reason: str | None = None):
        self.name = name
        self.reason = reason

    @staticmethod
    def allow() -> "Route":
        return Route("allow")

    @staticmethod
    def deny(reason: str) -> "Route":
        return Route("deny", reason)


class Approval(Route):
    """Hold the action until ``quorum`` distinct people from any of
    ``groups`` approve; one hour to decide unless `ttl_seconds` says otherwise."""

    def __init__(self, groups: list[str], quorum: int = 1):
        super().__init__("require-approval")
        self.groups = list(groups)
        self.quorum = quorum
        self.ttl = 3600
        self.modifiable_params: list[str] = []
        self.escalate_groups: list[str] = []

    def ttl_seconds(self, ttl: int) -> "Approval":
        self.ttl = ttl
        return self

    def modifiable(self, params: list[str]) -> "Approval":
        """Top-level params an approver may change (the change is re-evaluated)."""
        self.modifiable_params = list(params)
        return self

    def escalate_to(self, groups: list[str]) -> "Approval":
        """Groups told when nobody has decided by half the TTL."""
        self.escalate_groups = list(groups)
        return self


class Policy:
    """The rules of one policy plugin. Subclass it and pass the class to `export`."""

    def describe(self) -> PluginInfo:
        raise NotImplementedError

    def classify(self, action: Action) -> Classification:
        raise NotImplementedError

    def route(self, action: Action, classification: Classification) -> Route:
        raise NotImplementedError


def export(policy: type) -> type:
    """The class componentize-py exports for the ``policy`` world: assign it
    to ``WitWorld`` in the plugin module (``WitWorld = export(MyPolicy)``).
    Last in the plugin module, so after its imports: the SDK and the
    bindings are run warm (`_warm`, never the plugin's rules), and `random`
    is seeded on first use from here on (`_lazy_random`)."""
    from . import _lazy_random, _warm, _wit

    world = _wit.world(policy)
    _warm.warm(_wit.world(_warm._Sample), _wit._t, _wit.Err)
    _lazy_random.install()
    return world


def _lookup(pairs, key):
    for k, v in pairs:
        if k == key:
            return v
    return None


_JSON_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _describe_value(value) -> str:
    if value is None:
        return "null"
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            shown = _json.dumps(value)
            if len(shown) > 40:
                shown = shown[:40] + "..."
            return f"{_JSON_NAMES[kind]} ({shown})"
    return type(value).__name__


def _check(value, expected, path: str):
    """``value`` if it is of ``expected`` (JSON's view: a bool is not an
    int, an int is a float), else a `PolicyError` naming ``path``.

    Plain types and ``list[...]``/``dict[...]`` of them are checked without
    the `typing` helpers, which are Python code and were most of a small
    policy's own cost in the sandbox."""
    if expected is str or expected is dict or expected is list or expected is bool:
        if type(value) is expected or isinstance(value, expected):
            return value
        return _mismatch(value, expected, path)
    if expected is int:
        if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        return _mismatch(value, expected, path)
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _mismatch(value, expected, path)
    if expected is _typing.Any:
        return value
    if type(expected) is _types.GenericAlias:
        origin = expected.__origin__
        args = expected.__args__
    else:
        origin = _typing.get_origin(expected)
        args = _typing.get_args(expected)
    if origin is list:
        if not isinstance(value, list):
            return _mismatch(value, expected, path)
        item = args[0] if args else _typing.Any
        if item is str:
            for v in value:
                if type(v) is not str and not isinstance(v, str):
                    break
            else:
                return list(value)
        return [_check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            return _mismatch(value, expected, path)
        item = args[1] if len(args) == 2 else _typing.Any
        return {k: _check(v, item, f"{path}.{k}") for k, v in value.items()}
    if origin is _typing.Union or origin is _types.UnionType:
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _check(value, option, path)
            except PolicyError:
                pass
        names = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise PolicyError(f"{path}: expected {names}, got {_describe_value(value)}")
    raise TypeError(f"{path}: unsupported type {expected!r}")


def _mismatch(value, expected, path: str):
    raise PolicyError(f"{path}: expected {_type_name(expected)}, got {_describe_value(value)}")


def _type_name(expected) -> str:
    origin = _typing.get_origin(expected)
    if origin is list:
        args = _typing.get_args(expected)
        return f"an array of {_type_name(args[0]).split(' ', 1)[1]}s" if args else "an array"
    if origin is dict:
        return "an object"
    return _JSON_NAMES.get(expected, getattr(expected, "__name__", str(expected)))
