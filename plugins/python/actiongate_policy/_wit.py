"""The bridge to componentize-py's generated bindings (``wit_world``), which
exist only while a component is being built: converts the contract's records
to the SDK's classes and back, and turns `PolicyError` into the contract's
``err``. Must never decide anything itself.

It runs on every evaluation, in a fresh interpreter, so it avoids what is
slow there: calling an enum class (``Risk(x)``), hashing a plain enum
member (its ``__hash__`` is Python code), generator expressions."""

from componentize_py_types import Err
from wit_world import WitWorld as _Exports
from wit_world.imports import types as _t

from . import (
    Action,
    Approval,
    Classification,
    PluginInfo,
    PolicyError,
    Principal,
    Risk,
    Route,
)

# Indexed by the SDK's risk (an int); the contract's members in order.
_TO_WIT = (_t.Risk.LOW, _t.Risk.MEDIUM, _t.Risk.HIGH, _t.Risk.CRITICAL)
_FROM_WIT = (Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL)


def _strings(values, what):
    values = list(values)
    for v in values:
        if type(v) is not str and not isinstance(v, str):
            raise PolicyError(f"{what} must be strings")
    return values


def _action(a) -> Action:
    agent = a.agent
    return Action(
        a.id,
        a.kind,
        Principal(agent.id, agent.attributes),
        a.resource,
        a.params,
        a.requested_at,
        a.on_behalf_of,
        a.justification,
        a.context,
    )


def _classification_out(c) -> "_t.Classification":
    if not isinstance(c, Classification):
        raise PolicyError(f"classify must return a Classification, not {type(c).__name__}")
    risk = c.risk
    if type(risk) is not Risk:
        risk = Risk(risk)
    return _t.Classification(
        _TO_WIT[risk], _strings(c.reasons, "reasons"), _strings(c.tags, "tags")
    )


def _classification_in(c) -> Classification:
    return Classification(_FROM_WIT[_TO_WIT.index(c.risk)], c.reasons, c.tags)


def _u32(name, value):
    if type(value) is not int or not 0 <= value <= 0xFFFF_FFFF:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF_FFFF:
            raise PolicyError(f"{name} must be an integer in 0..2^32, not {value!r}")
    return value


def _route_out(r):
    if isinstance(r, Approval):
        return _t.Route_RequireApproval(
            _t.Approval(
                _strings(r.groups, "groups"),
                _u32("quorum", r.quorum),
                _u32("ttl-seconds", r.ttl),
                _strings(r.modifiable_params, "modifiable params"),
                _strings(r.escalate_groups, "escalate-to groups"),
            )
        )
    if isinstance(r, Route):
        if r.name == "allow":
            return _t.Route_Allow()
        if r.name == "deny" and isinstance(r.reason, str):
            return _t.Route_Deny(r.reason)
    raise PolicyError(f"route must return Route.allow(), Route.deny(reason) or an Approval, not {r!r}")


def world(policy_class):
    policy = policy_class()

    class WitWorld(_Exports):
        def describe(self):
            info = policy.describe()
            return _t.PluginInfo(info.name, info.version, list(info.kinds))

        def classify(self, action):
            try:
                return _classification_out(policy.classify(_action(action)))
            except PolicyError as e:
                raise Err(str(e)) from None

        def route(self, action, classification):
            try:
                return _route_out(policy.route(_action(action), _classification_in(classification)))
            except PolicyError as e:
                raise Err(str(e)) from None

    return WitWorld
