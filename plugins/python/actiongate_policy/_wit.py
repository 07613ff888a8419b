"""The bridge to componentize-py's generated bindings (``wit_world``), which
exist only while a component is being built: converts the contract's records
to the SDK's classes and back, and turns `PolicyError` into the contract's
``err``. Must never decide anything itself."""

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
    _reseed_once,
)

_RISKS = {
    Risk.LOW: _t.Risk.LOW,
    Risk.MEDIUM: _t.Risk.MEDIUM,
    Risk.HIGH: _t.Risk.HIGH,
    Risk.CRITICAL: _t.Risk.CRITICAL,
}
_FROM_WIT = {v: k for k, v in _RISKS.items()}


def _strings(values, what):
    values = list(values)
    if not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{what} must be strings")
    return values


def _action(a) -> Action:
    return Action(
        id=a.id,
        kind=a.kind,
        agent=Principal(a.agent.id, a.agent.attributes),
        resource=a.resource,
        params=a.params,
        requested_at=a.requested_at,
        on_behalf_of=a.on_behalf_of,
        justification=a.justification,
        context=a.context,
    )


def _classification_out(c) -> "_t.Classification":
    if not isinstance(c, Classification):
        raise PolicyError(f"classify must return a Classification, not {type(c).__name__}")
    return _t.Classification(
        _RISKS[Risk(c.risk)], _strings(c.reasons, "reasons"), _strings(c.tags, "tags")
    )


def _classification_in(c) -> Classification:
    return Classification(_FROM_WIT[c.risk], c.reasons, c.tags)


def _route_out(r):
    if isinstance(r, Approval):
        for name, value in (("quorum", r.quorum), ("ttl-seconds", r.ttl)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
                raise PolicyError(f"{name} must be an integer in 0..2^32, not {value!r}")
        return _t.Route_RequireApproval(
            _t.Approval(
                _strings(r.groups, "groups"),
                r.quorum,
                r.ttl,
                _strings(r.modifiable_params, "modifiable params"),
                _strings(r.escalate_groups, "escalate-to groups"),
            )
        )
    if isinstance(r, Route) and r.name == "allow":
        return _t.Route_Allow()
    if isinstance(r, Route) and r.name == "deny" and isinstance(r.reason, str):
        return _t.Route_Deny(r.reason)
    raise PolicyError(f"route must return Route.allow(), Route.deny(reason) or an Approval, not {r!r}")


def world(policy_class):
    policy = policy_class()

    class WitWorld(_Exports):
        def describe(self):
            _reseed_once()
            info = policy.describe()
            return _t.PluginInfo(info.name, info.version, list(info.kinds))

        def classify(self, action):
            _reseed_once()
            try:
                return _classification_out(policy.classify(_action(action)))
            except PolicyError as e:
                raise Err(str(e)) from None

        def route(self, action, classification):
            _reseed_once()
            try:
                return _route_out(policy.route(_action(action), _classification_in(classification)))
            except PolicyError as e:
                raise Err(str(e)) from None

    return WitWorld
