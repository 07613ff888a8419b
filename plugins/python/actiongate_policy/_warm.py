"""Runs the SDK and the bindings over sample actions while the component is
built, so that the interpreter's snapshot holds them warm. Must never run
the plugin's own rules, or leave anything an evaluation could read.

CPython specialises the bytecode it runs (3.11+) and fills attribute and
method caches as it goes. Every evaluation is a fresh instance of the
snapshot, so without this each one paid that warm-up again for the same
code: the bridge in `_wit`, the params checks, the builders, the contract's
records. Measured on the Python db-export (`cargo bench -p actiongate
--bench evaluate`, README): 604,666 fuel per evaluation before, 420,087
after.

Only `_Sample`, a policy of this module, runs here: a plugin's rules might
loop, draw from `random` or keep state, and none of that belongs in a
build. The sample uses every part of the SDK's API a policy reaches for,
and its actions take each route and both failure paths."""

import json as _json

from . import Approval, Classification, PluginInfo, Policy, PolicyError, Risk, Route

# Rounds over the samples: CPython specialises an instruction after it
# ran a few times. Fuel per db-export evaluation with 1, 8 and 32 rounds:
# 427,165, 420,087 and 417,906.
ROUNDS = 8


class _Sample(Policy):
    def describe(self):
        return PluginInfo("warm-up", "0", ["warm.up"])

    def classify(self, action):
        params = action.params()
        rows = params.require("rows", int)
        tables = params.require("tables", list[str])
        where = params.require("destination", str)
        params.get("ratio", float, default=1.0)
        params.get("dry_run", bool)
        params.get("labels", dict[str, str])
        params.raw("note")
        action.requested_at()
        action.context("session")
        action.agent.attribute("owner")
        if rows < 0:
            raise PolicyError("params.rows: not a row count")
        c = Classification(Risk.LOW)
        if rows > 10:
            c.raise_to(Risk.MEDIUM, "rows:large", f"{rows} rows")
        if any(t.startswith("pii") for t in tables):
            c.raise_to(Risk.HIGH, "pii", "personal data")
        if not where.startswith(("s3://ok/", "bq://ok/")):
            c.raise_to(Risk.CRITICAL, "destination:unlisted", f"{where} is not listed")
        return c

    def route(self, action, c):
        if c.has_tag("pii") and c.has_tag("destination:unlisted"):
            return Route.deny("personal data may not leave")
        if c.risk == Risk.LOW:
            return Route.allow()
        if c.risk == Risk.MEDIUM:
            return Approval(["owners"], quorum=1).modifiable(["rows"])
        return Approval(["owners"], quorum=2).ttl_seconds(600).escalate_to(["security"])


# One per route and per failure: allow, one approver, two, deny, a
# PolicyError from a params check and one from the rules.
_SAMPLES = [
    {"rows": 1, "tables": ["orders"], "destination": "s3://ok/a", "ratio": 0.5, "dry_run": True},
    {"rows": 50, "tables": ["orders"], "destination": "s3://ok/a", "labels": {"k": "v"}},
    {"rows": 50, "tables": ["pii_users"], "destination": "bq://ok/b", "note": None},
    {"rows": 5, "tables": ["pii_users"], "destination": "https://elsewhere/"},
    {"rows": "many", "tables": ["orders"], "destination": "s3://ok/a"},
    {"rows": -1, "tables": [], "destination": "s3://ok/a"},
]


def warm(world_class, types, err) -> int:
    """Runs ``world_class`` (the bridge `_wit.world` made of `_Sample`) over
    the samples as the host would call it, building the contract's records
    with ``types``; ``err`` is the bindings' error the bridge raises.
    Returns the calls made."""
    world = world_class()
    world.describe()
    actions = [
        types.Action(
            "00000000-0000-7000-8000-000000000000",
            "warm.up",
            types.Principal("warm-up", [("owner", "owner@example.com")]),
            None,
            "warm://up",
            _json.dumps(params),
            None,
            [("session", "s-1")],
            "2026-01-01T00:00:00.000Z",
        )
        for params in _SAMPLES
    ]
    calls = 0
    for _ in range(ROUNDS):
        for action in actions:
            calls += 1
            try:
                classification = world.classify(action)
            except err:
                continue
            calls += 1
            world.route(action, classification)
    return calls
