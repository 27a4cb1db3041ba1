"""Freeway routing policy "python-example": spare the daily quotas.

Order, best first:
  1. candidates in a cooldown go last;
  2. local servers (Ollama, llama.cpp, ...) first: they cost no quota at all;
  3. then the most daily headroom left: the smallest remaining/limit fraction over the candidate's
     daily dimensions (rpd, tpd, itpd, otpd), so one nearly spent daily quota counts as spent;
     a candidate with no daily limit counts as 1.0;
  4. ties by higher quality.

Build (from this folder; wit/ is the repository's WIT package):
  componentize-py -d ../../../wit -w policy componentize app -o python-example.wasm
and drop python-example.wasm into the gateway's policies/ folder. Test without wasm:
  python3 test_app.py
"""

from wit_world import exports
from wit_world.exports.policy_api import Candidate, Choice, Features

NAME = "python-example"


def daily_headroom(c: Candidate) -> float:
    """The scarcest daily dimension's remaining fraction, 1.0 when there is none."""
    fractions = [
        h.remaining / h.limit
        for h in c.headroom
        if h.dimension.endswith("pd") and h.limit > 0  # rpd, tpd, itpd, otpd
    ]
    return min(fractions, default=1.0)


def reason(c: Candidate, headroom: float) -> str:
    """Say the figure that placed the candidate where it is."""
    if c.cooldown_ms > 0:
        return f"{NAME}: cooling down {c.cooldown_ms} ms"
    if c.local:
        return f"{NAME}: local server"
    return f"{NAME}: daily headroom {headroom:.2f}, quality {c.quality}"


class PolicyApi(exports.PolicyApi):
    def rank(self, request: Features, candidates: list[Candidate]) -> list[Choice]:
        headroom = [daily_headroom(c) for c in candidates]

        def key(i: int):
            c = candidates[i]
            # sorted() is ascending, so "more is better" figures are negated
            return (c.cooldown_ms > 0, not c.local, -headroom[i], -c.quality)

        # sorted() is stable: full ties keep the host's order
        order = sorted(range(len(candidates)), key=key)
        n = len(order)
        # every candidate is returned (leaving one out would mean "never try it");
        # the score just decreases down the list: 1.0, ..., 1/n
        return [
            Choice(index=i, score=(n - pos) / n, reason=reason(candidates[i], headroom[i]))
            for pos, i in enumerate(order)
        ]
