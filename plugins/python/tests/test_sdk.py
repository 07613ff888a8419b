"""The SDK's own rules, run natively (no component): typed params whose
errors name the field, the builders, requested-at. Run:
PYTHONPATH=plugins/python python3 plugins/python/tests/test_sdk.py"""

import datetime
import random
import unittest

from actiongate_policy import (
    Action,
    Approval,
    Classification,
    Params,
    PolicyError,
    Principal,
    Risk,
    Route,
)


def action(params='{"rows": 5}', requested_at="2026-11-25T10:00:00Z"):
    return Action(
        id="a-1",
        kind="db.export",
        agent=Principal("etl", [("owner", "o@example.com")]),
        resource="postgres://x",
        params=params,
        requested_at=requested_at,
        context=[("session", "s-1")],
    )


class ParamsTest(unittest.TestCase):
    def error(self, fn):
        with self.assertRaises(PolicyError) as caught:
            fn()
        return str(caught.exception)

    def test_typed_access(self):
        p = Params.parse('{"rows": 5, "tables": ["a", "b"], "ratio": 1, "on": true, "n": null}')
        self.assertEqual(p.require("rows", int), 5)
        self.assertEqual(p.require("tables", list[str]), ["a", "b"])
        self.assertEqual(p.require("ratio", float), 1.0)
        self.assertIs(p.require("on", bool), True)
        self.assertIsNone(p.get("n", int))
        self.assertEqual(p.get("missing", int, default=7), 7)

    def test_errors_name_the_field(self):
        p = Params.parse('{"rows": "lots", "tables": ["a", 3], "on": 1, "flag": true}')
        self.assertEqual(
            self.error(lambda: p.require("rows", int)),
            'params.rows: expected an integer, got a string ("lots")',
        )
        self.assertEqual(
            self.error(lambda: p.require("tables", list[str])),
            "params.tables[1]: expected a string, got an integer (3)",
        )
        self.assertEqual(self.error(lambda: p.require("absent")), "params.absent is required")
        self.assertIn("params.flag: expected an integer, got a boolean", self.error(lambda: p.require("flag", int)))
        self.assertIn("params.on: expected a boolean", self.error(lambda: p.require("on", bool)))

    def test_checked_values_are_copies_and_generics_nest(self):
        p = Params.parse('{"tables": ["a"], "limits": {"x": 1, "y": 2}, "maybe": 4, "deep": [[1], [2, 3]]}')
        tables = p.require("tables", list[str])
        tables.append("b")
        self.assertEqual(p.require("tables", list[str]), ["a"], "the caller gets a copy")
        self.assertEqual(p.require("limits", dict[str, int]), {"x": 1, "y": 2})
        self.assertEqual(p.require("maybe", int | None), 4)
        self.assertEqual(p.require("deep", list[list[int]]), [[1], [2, 3]])
        self.assertEqual(
            self.error(lambda: p.require("limits", dict[str, str])),
            "params.limits.x: expected a string, got an integer (1)",
        )
        self.assertEqual(
            self.error(lambda: p.require("maybe", str | None)),
            "params.maybe: expected a string, got an integer (4)",
        )
        with self.assertRaises(TypeError):
            p.require("maybe", tuple)

    def test_params_must_be_an_object(self):
        self.assertEqual(self.error(lambda: Params.parse("[1]")), "params must be a JSON object")
        self.assertIn("not valid JSON", self.error(lambda: Params.parse("{")))


class ActionTest(unittest.TestCase):
    def test_requested_at_is_aware_utc(self):
        at = action().requested_at()
        self.assertEqual(at, datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.timezone.utc))
        self.assertEqual(at.isoweekday(), 3)
        with self.assertRaises(PolicyError):
            action(requested_at="2026-11-25T10:00:00+01:00").requested_at()

    def test_lookups(self):
        a = action()
        self.assertEqual(a.context("session"), "s-1")
        self.assertIsNone(a.context("model"))
        self.assertEqual(a.agent.attribute("owner"), "o@example.com")


class BuildersTest(unittest.TestCase):
    def test_raise_to_only_raises(self):
        c = Classification(Risk.HIGH)
        c.raise_to(Risk.MEDIUM, "rows:large", "many rows")
        self.assertEqual(c.risk, Risk.HIGH)
        c.raise_to(Risk.CRITICAL, "pii", "personal data")
        self.assertEqual(c.risk, Risk.CRITICAL)
        self.assertEqual(c.tags, ["rows:large", "pii"])
        self.assertTrue(c.has_tag("pii"))

    def test_a_plain_int_risk_becomes_a_risk(self):
        c = Classification(2)
        self.assertIs(c.risk, Risk.HIGH)
        c.raise_to(3, "t", "r")
        self.assertIs(c.risk, Risk.CRITICAL)

    def test_routes(self):
        a = Approval(["data-owners"], quorum=2).ttl_seconds(60).modifiable(["rows"]).escalate_to(["security"])
        self.assertEqual(
            (a.name, a.groups, a.quorum, a.ttl, a.modifiable_params, a.escalate_groups),
            ("require-approval", ["data-owners"], 2, 60, ["rows"], ["security"]),
        )
        self.assertEqual(Route.allow().name, "allow")
        self.assertEqual(Route.deny("no").reason, "no")


class LazyRandomTest(unittest.TestCase):
    """`export` leaves `random` pending: seeded at its first draw, not by
    the runtime's ``seed()`` at the start of every instance. Here the
    "snapshot" is a state set before `install`."""

    BAKED = 7

    def setUp(self):
        from actiongate_policy import _lazy_random

        self.lazy = _lazy_random
        random.seed(self.BAKED)
        self.baked = random.getstate()
        replay = random.Random()
        replay.setstate(self.baked)
        self.baked_draws = [replay.random() for _ in range(3)]
        self.assertTrue(self.lazy.install(), "nothing else holds random's names")
        self.assertTrue(self.pending())

    def tearDown(self):
        random.seed()
        self.assertFalse(self.pending())

    def pending(self):
        return type(random._inst) is not random.Random

    def test_a_bare_seed_waits_for_the_first_draw(self):
        random.seed()  # what the runtime calls in every instance
        self.assertTrue(self.pending(), "no seeding without a draw")
        from random import randint  # bound to the generator, through its class

        draws = [randint(0, 2**62)] + [random.random() for _ in range(2)]
        self.assertFalse(self.pending())
        replay = random.Random()
        replay.setstate(self.baked)
        self.assertNotEqual(draws, [replay.randint(0, 2**62), replay.random(), replay.random()])
        self.assertIs(random.random, self.lazy._originals["random"], "the module's names are back")

    def test_every_primitive_seeds_first(self):
        for draw in (random.random, lambda: random.getrandbits(64), random.getstate, lambda: random.choice(range(100))):
            random.setstate(self.baked)
            self.lazy.install()
            draw()
            self.assertFalse(self.pending())
            self.assertNotEqual(random.random(), self.baked_draws[1], "drawn from a fresh seed")

    def test_seed_and_setstate_set_the_state_they_are_given(self):
        random.seed(self.BAKED)
        self.assertFalse(self.pending())
        self.assertEqual(random.random(), self.baked_draws[0])
        self.lazy.install()
        random.setstate(self.baked)
        self.assertFalse(self.pending())
        self.assertEqual([random.random() for _ in range(3)], self.baked_draws)

    def test_a_name_held_elsewhere_keeps_the_eager_seed(self):
        random.seed(self.BAKED)  # not pending: the module's own names are back
        # As a plugin's `from random import random` (a module global): it
        # skips the class, so it would draw the baked state.
        self.held = {"random": random.random}
        self.assertFalse(self.lazy.install())
        self.assertFalse(self.pending())
        self.assertIs(random.random, self.held["random"])
        del self.held


class WarmUpTest(unittest.TestCase):
    """`_warm` runs the SDK's own sample policy through the bridge while the
    snapshot is taken: every route and both failure paths, nothing else."""

    def test_the_samples_take_every_route_and_failure(self):
        from types import SimpleNamespace

        from actiongate_policy import _warm

        class Err(Exception):
            pass

        # The contract's records as the bindings build them: plain values.
        types = SimpleNamespace(
            Principal=lambda id, attributes: SimpleNamespace(id=id, attributes=attributes),
            Action=lambda *f: SimpleNamespace(
                **dict(zip(("id", "kind", "agent", "on_behalf_of", "resource", "params",
                            "justification", "context", "requested_at"), f))
            ),
        )
        routes, errors = [], []

        class Bridge:
            """What `_wit.world(_Sample)` does, on the SDK's classes."""

            policy = _warm._Sample()

            def describe(self):
                return self.policy.describe()

            def sdk_action(self, a):
                agent = Principal(a.agent.id, a.agent.attributes)
                return Action(a.id, a.kind, agent, a.resource, a.params, a.requested_at,
                              a.on_behalf_of, a.justification, a.context)

            def classify(self, a):
                try:
                    return self.policy.classify(self.sdk_action(a))
                except PolicyError as e:
                    errors.append(str(e))
                    raise Err(str(e)) from None

            def route(self, a, c):
                r = self.policy.route(self.sdk_action(a), c)
                routes.append((r.name, getattr(r, "quorum", None)))
                return r

        state = random.getstate()
        calls = _warm.warm(Bridge, types, Err)
        self.assertEqual(random.getstate(), state, "no draw from the snapshot's generator")
        rounds = _warm.ROUNDS
        self.assertEqual(calls, rounds * (len(_warm._SAMPLES) + 4))
        self.assertEqual(
            sorted(set(routes)),
            [("allow", None), ("deny", None), ("require-approval", 1), ("require-approval", 2)],
        )
        self.assertEqual(len(routes), 4 * rounds)
        self.assertEqual(
            sorted(set(errors)),
            ['params.rows: expected an integer, got a string ("many")', "params.rows: not a row count"],
        )


if __name__ == "__main__":
    unittest.main()
