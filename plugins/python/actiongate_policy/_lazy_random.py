"""Seeds Python's shared `random` generator on its first use in an instance
instead of at the start of every instance. Must never let a draw come from
the state baked into the component's snapshot.

componentize-py's runtime calls ``random.seed()`` when an instance first
runs, so that `random` does not repeat the build's state. That seeding
(624 words from WASI random mixed into Mersenne Twister's state) was about
100k of the Python db-export's 700k fuel, paid by every evaluation, though
few policies draw a random number. Installed by `export`, while the
snapshot is taken, this module leaves the shared generator *pending*: ``seed()`` with
no argument while pending does nothing, and the first draw (or
``getstate``) seeds it as ``seed()`` would have, from the sandbox's WASI
random, which the host seeds from the action id. So `random` still differs
per action and repeats on replay, and a plugin that never draws pays
nothing. ``seed(x)`` and ``setstate`` end the pending state as they set it.

Draws reach the generator through its class (``random.randint`` calls
``self.getrandbits``), so the pending generator's class is a subclass whose
primitives seed first; the module's own names for the C primitives and the
state functions, which would skip the class, are replaced until then. A
reference to those names held elsewhere would skip both: then `install`
leaves the generator as it is. It looks with `gc.get_referrers`, which
does not see a reference held only by a function still running when
`export` is called."""

import gc as _gc
import random as _random

_inst = _random._inst
_Random = _random.Random
# The module's names that reach `_inst` without going through its class.
_DIRECT = ("random", "getrandbits", "getstate", "setstate", "seed")
_originals = {name: getattr(_random, name) for name in _DIRECT}


def _seed_now():
    """Ends the pending state: the generator back to its class and the
    module's names back to the originals, then seeded from WASI random."""
    _end_pending()
    _Random.seed(_inst)


def _end_pending():
    if type(_inst) is _Pending:
        _inst.__class__ = _Random
    for name, value in _originals.items():
        setattr(_random, name, value)


class _Pending(_Random):
    """`random.Random` whose primitives seed it before their first draw.
    Same layout as its base (no slots), so the class can be swapped."""

    def random(self):
        _seed_now()
        return self.random()

    def getrandbits(self, k):
        _seed_now()
        return self.getrandbits(k)

    def getstate(self):
        _seed_now()
        return self.getstate()

    def setstate(self, state):
        _end_pending()
        return self.setstate(state)

    def seed(self, a=None, version=2):
        if a is None:
            return None
        _end_pending()
        return self.seed(a, version)


def _random_():
    return _inst.random()


def _getrandbits(k):
    return _inst.getrandbits(k)


def _getstate():
    return _inst.getstate()


def _setstate(state):
    return _inst.setstate(state)


def _seed(a=None, version=2):
    return _inst.seed(a, version)


def install():
    """Leaves the shared generator pending (see the module's doc), unless
    anything but the random module holds one of the names that skip its
    class (a ``from random import random``, say): such a reference would
    draw from the snapshot's state, so then the generator stays as it is
    and the runtime's ``seed()`` seeds every instance. Returns whether it
    is pending."""
    for value in _originals.values():
        for holder in _gc.get_referrers(value):
            if holder is not _originals and holder is not _random.__dict__:
                return False
    _inst.__class__ = _Pending
    _random.random = _random_
    _random.getrandbits = _getrandbits
    _random.getstate = _getstate
    _random.setstate = _setstate
    _random.seed = _seed
    return True
