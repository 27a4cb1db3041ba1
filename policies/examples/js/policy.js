// Freeway routing policy "js-example": fastest first.
//
// Order, best first:
//   1. candidates in a cooldown go last;
//   2. lowest time-to-first-token median (ttft-p50-ms); unknown ttft after every known one;
//   3. ties by higher success rate (unknown counts as 0), then by higher quality.
//
// Build: `npm ci && npm run build` (see package.json), then drop js-example.wasm into the
// gateway's policies/ folder. Test without wasm: `node test_policy.mjs`.
//
// Bindings, as componentize-js maps the WIT: the exported interface `policy-api` is the object
// `policyApi`; record fields are camelCase (`ttft-p50-ms` -> `ttftP50Ms`); option<T> is T or
// undefined; u64 (`cooldownMs`) is a BigInt; enums are strings ("tool-use").

const NAME = "js-example";

const known = (x) => x !== undefined && x !== null;

// Negative: a goes first. Every rule returns 0 when it cannot tell a and b apart.
function compare(a, b) {
  const coolA = a.cooldownMs > 0; // BigInt vs number compares fine
  const coolB = b.cooldownMs > 0;
  if (coolA !== coolB) return coolA ? 1 : -1;
  const ttftA = known(a.ttftP50Ms) ? a.ttftP50Ms : Infinity;
  const ttftB = known(b.ttftP50Ms) ? b.ttftP50Ms : Infinity;
  if (ttftA !== ttftB) return ttftA - ttftB;
  const okA = a.successRate ?? 0;
  const okB = b.successRate ?? 0;
  if (okA !== okB) return okB - okA;
  return b.quality - a.quality;
}

// Say the figure that placed the candidate where it is.
function reason(c) {
  if (c.cooldownMs > 0) return `${NAME}: cooling down ${c.cooldownMs} ms`;
  if (!known(c.ttftP50Ms)) return `${NAME}: ttft unknown, quality ${c.quality}`;
  return `${NAME}: ttft p50 ${Math.round(c.ttftP50Ms)} ms`;
}

export const policyApi = {
  // -> [{ index, score, reason }], best first. Every candidate is returned (leaving one out
  // would mean "never try it"); the score just decreases down the list: 1, ..., 1/n.
  rank(request, candidates) {
    // Array.prototype.sort is stable: full ties keep the host's order
    const order = candidates.map((_, i) => i).sort((i, j) => compare(candidates[i], candidates[j]));
    const n = order.length;
    return order.map((i, pos) => ({ index: i, score: (n - pos) / n, reason: reason(candidates[i]) }));
  },
};
