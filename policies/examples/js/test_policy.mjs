// Check the "js-example" ranking with plain node, no wasm: `node test_policy.mjs` (or `npm test`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { policyApi } from "./policy.js";

// a candidate as componentize-js hands it over (camelCase, BigInt u64, undefined for none)
const cand = (provider, more = {}) => ({
  provider,
  model: "m",
  pool: "p",
  accounts: 1,
  capabilities: { tools: false, vision: false, reasoning: false, jsonMode: false, streaming: true },
  contextWindow: undefined,
  quality: 50,
  preference: undefined,
  headroom: [],
  latencyEwmaMs: undefined,
  ttftP50Ms: undefined,
  tokensPerSecond: undefined,
  successRate: undefined,
  cooldownMs: 0n,
  free: true,
  local: false,
  ...more,
});

test("fastest first, unknown ttft after known, cooldown last", () => {
  const cands = [
    cand("cool", { cooldownMs: 1500n, ttftP50Ms: 10 }), // 0: cooldown -> last
    cand("unknown-q90", { quality: 90 }), // 1: unknown ttft, higher quality
    cand("slow", { ttftP50Ms: 900 }), // 2
    cand("fast-flaky", { ttftP50Ms: 120, successRate: 0.8 }), // 3
    cand("fast-steady", { ttftP50Ms: 120, successRate: 0.99 }), // 4
    cand("unknown-q40", { quality: 40 }), // 5
    cand("fast-steady-better", { ttftP50Ms: 120, successRate: 0.99, quality: 80 }), // 6
  ];
  const out = policyApi.rank({}, cands);
  assert.deepEqual(out.map((c) => c.index), [6, 4, 3, 2, 1, 5, 0]);
  const scores = out.map((c) => c.score);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
  assert.equal(new Set(scores).size, scores.length);
  for (const c of out) assert.ok(c.reason.startsWith("js-example: "), c.reason);
  assert.equal(out[0].reason, "js-example: ttft p50 120 ms");
  assert.equal(out[4].reason, "js-example: ttft unknown, quality 90");
  assert.equal(out[6].reason, "js-example: cooling down 1500 ms");
});

test("full ties keep the host's order; empty in, empty out", () => {
  assert.deepEqual(policyApi.rank({}, [cand("a"), cand("b"), cand("c")]).map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(policyApi.rank({}, []), []);
});
