"""Check the "python-example" ranking with plain python3, no wasm: `python3 test_app.py`.

The generated `wit_world` bindings exist only inside the component, so small stand-ins for the
few names app.py uses are installed first.
"""

import sys
import types
import unittest
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Headroom:
    dimension: str
    remaining: int
    limit: int
    reset_in_ms: int = 0


@dataclass
class Candidate:
    provider: str
    model: str = "m"
    pool: str = "p"
    accounts: int = 1
    capabilities: int = 0
    context_window: Optional[int] = None
    quality: int = 50
    preference: Optional[int] = None
    headroom: list = field(default_factory=list)
    latency_ewma_ms: Optional[float] = None
    ttft_p50_ms: Optional[float] = None
    tokens_per_second: Optional[float] = None
    success_rate: Optional[float] = None
    cooldown_ms: int = 0
    free: bool = True
    local: bool = False


@dataclass
class Choice:
    index: int
    score: float
    reason: str


def install_stubs():
    policy_api = types.ModuleType("wit_world.exports.policy_api")
    policy_api.Candidate, policy_api.Choice, policy_api.Features = Candidate, Choice, object
    exports = types.ModuleType("wit_world.exports")
    exports.PolicyApi = type("PolicyApi", (), {})
    exports.policy_api = policy_api
    wit_world = types.ModuleType("wit_world")
    wit_world.exports = exports
    sys.modules.update({"wit_world": wit_world, "wit_world.exports": exports, "wit_world.exports.policy_api": policy_api})


install_stubs()
import app  # noqa: E402


def rank(candidates):
    return app.PolicyApi().rank(None, candidates)


class RankTest(unittest.TestCase):
    def test_order(self):
        cands = [
            Candidate("cool", cooldown_ms=1500, local=True),                     # 0: cooldown -> last
            Candidate("low", headroom=[Headroom("rpd", 10, 100), Headroom("rpm", 29, 30)]),  # 1: 0.10
            Candidate("unlimited", quality=40),                                  # 2: no daily -> 1.0
            Candidate("local", local=True, headroom=[Headroom("rpd", 1, 100)]),  # 3: local -> first
            Candidate("half", headroom=[Headroom("tpd", 900, 1000), Headroom("otpd", 50, 100)]),  # 4: 0.50
            Candidate("unlimited-better", quality=90, headroom=[Headroom("tpm", 0, 100)]),  # 5: 1.0, q90
        ]
        out = rank(cands)
        self.assertEqual([c.index for c in out], [3, 5, 2, 4, 1, 0])
        scores = [c.score for c in out]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertEqual(len(set(scores)), len(scores))
        for c in out:
            self.assertTrue(c.reason.startswith("python-example: "), c.reason)
        self.assertEqual(out[0].reason, "python-example: local server")
        self.assertEqual(out[3].reason, "python-example: daily headroom 0.50, quality 50")
        self.assertEqual(out[5].reason, "python-example: cooling down 1500 ms")

    def test_zero_limit_is_ignored_and_ties_keep_order(self):
        out = rank([Candidate("a", headroom=[Headroom("rpd", 0, 0)]), Candidate("b")])
        self.assertEqual([c.index for c in out], [0, 1])
        self.assertIn("daily headroom 1.00", out[0].reason)

    def test_empty(self):
        self.assertEqual(rank([]), [])


if __name__ == "__main__":
    unittest.main()
