// Check the "jsexample" provider's logic with plain node, no wasm: `node test_provider.mjs` (or
// `npm test`). provider.js imports the host's `freeway:gateway/http@0.1.1`, which exists only
// inside the component: it is loaded here with that import replaced by a stand-in.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const IMPORT = 'import { send } from "freeway:gateway/http@0.1.1";';
const source = readFileSync(new URL("./provider.js", import.meta.url), "utf8");
assert.ok(source.includes(IMPORT), "provider.js imports the host's http.send");
const stub = "const send = (req, auth) => globalThis.hostSend(req, auth);";
const { providerApi, declare, joinUrl, parseDurationMs } = await import(
  `data:text/javascript,${encodeURIComponent(source.replace(IMPORT, stub))}`
);

const config = (baseUrl = "http://127.0.0.1:9000/v1") => ({ providerId: "js", baseUrl, settings: [] });
const bytes = (text) => new TextEncoder().encode(text);

test("URLs join with exactly one slash", () => {
  for (const base of ["https://h/v1", "https://h/v1/", "https://h/v1//"]) {
    assert.equal(joinUrl(base, "chat/completions"), "https://h/v1/chat/completions");
    assert.equal(joinUrl(base, "/models"), "https://h/v1/models");
  }
});

test("chat plans a passthrough without logprobs", () => {
  const req = { config: config("http://x/v1/"), account: 3, model: "m", streaming: true, params: ["model", "messages", "logprobs"], body: undefined };
  const call = providerApi.chat(req);
  assert.equal(call.url, "http://x/v1/chat/completions");
  assert.equal(call.method, "POST");
  assert.deepEqual(call.headers, [["content-type", "application/json"], ["accept", "text/event-stream"]]);
  assert.deepEqual(call.body, { tag: "passthrough", val: [{ tag: "remove", val: "logprobs" }] });
  assert.equal(call.response, "openai");
  const plain = providerApi.chat({ ...req, streaming: false, params: ["model", "messages"] });
  assert.deepEqual(plain.headers, [["content-type", "application/json"]]);
  assert.deepEqual(plain.body, { tag: "passthrough", val: [] });
});

test("durations and rate-limit headers", () => {
  const cases = { "6s": 6000n, "1m2.5s": 62500n, "2m59.56s": 179560n, "250ms": 250n, "1h0m1s": 3601000n, "59.5": 59500n, "30ms": 30n };
  for (const [text, ms] of Object.entries(cases)) assert.equal(parseDurationMs(text), ms, text);
  for (const bad of ["soon", "5x", "", "1m2", "m"]) assert.equal(parseDurationMs(bad), undefined, bad);
  const u = providerApi.parseLimits(config(), 1, 200, [
    ["x-ratelimit-limit-requests", "14400"],
    ["X-RateLimit-Remaining-Requests", "14370"],
    ["x-ratelimit-reset-requests", "2m59.56s"],
    ["x-ratelimit-remaining-tokens", "5997"],
    ["x-ratelimit-reset-tokens", "30ms"],
  ], undefined);
  assert.deepEqual(u, [
    { dimension: "requests", window: "minute", limit: 14400n, remaining: 14370n, resetAfterMs: 179560n, scope: undefined },
    { dimension: "tokens", window: "minute", limit: undefined, remaining: 5997n, resetAfterMs: 30n, scope: undefined },
  ]);
  assert.deepEqual(providerApi.parseLimits(config(), 1, 200, [["x-ratelimit-reset-requests", "1s"]], undefined), []);
});

test("error statuses map to kinds", () => {
  const expected = {
    400: "bad-request", 401: "auth", 402: "payment-required", 403: "permission", 404: "not-found", 408: "timeout",
    413: "bad-request", 422: "bad-request", 429: "rate-limited", 500: "upstream", 502: "upstream", 503: "overloaded",
    504: "timeout", 529: "overloaded",
  };
  for (const [status, kind] of Object.entries(expected)) {
    const e = providerApi.mapError(config(), Number(status), [], "");
    assert.equal(e.kind, kind, status);
    assert.equal(e.message, `upstream answered HTTP ${status}`);
  }
});

test("error bodies and retry-after", () => {
  const e = providerApi.mapError(config(), 429, [["retry-after", "7"]],
    '{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}');
  assert.deepEqual(e, { kind: "rate-limited", message: "Rate limit reached", status: 429, code: "rate_limit_exceeded", retryAfterMs: 7000n, window: "unknown" });
  assert.equal(providerApi.mapError(config(), 429, [["retry-after-ms", "1500.2"]], "").retryAfterMs, 1501n);
  assert.equal(providerApi.mapError(config(), 429, [["retry-after", "-3"]], "").retryAfterMs, 0n);
  assert.equal(providerApi.mapError(config(), 429, [["retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"]], "").retryAfterMs, undefined);
  const quota = providerApi.mapError(config(), 429, [], '{"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}}');
  assert.deepEqual([quota.kind, quota.window], ["quota-exhausted", "day"]);
  assert.equal(providerApi.mapError(config(), 400, [], '{"code":"context_length_exceeded","message":"too long"}').kind, "context-length");
  assert.equal(providerApi.mapError(config(), 400, [], '{"error":"bad thing"}').message, "bad thing");
  assert.equal(providerApi.mapError(config(), 502, [], "<html>bad gateway</html>").message, "<html>bad gateway</html>");
});

test("models are listed through the host's http.send", () => {
  let seen;
  globalThis.hostSend = (req, auth) => {
    seen = { req, auth };
    return { status: 200, headers: [], body: bytes('{"object":"list","data":[{"id":"sim-model","owned_by":"sim"},{"id":"m2"},{"x":1}]}') };
  };
  const models = providerApi.listModels(config("http://h/v1/"), 7);
  assert.deepEqual([seen.req.method, seen.req.url, seen.auth], ["GET", "http://h/v1/models", 7]);
  assert.deepEqual(models.map((m) => m.id), ["sim-model", "m2"]);
  assert.equal(models[0].ownedBy, "sim");
  globalThis.hostSend = () => ({ status: 401, headers: [], body: bytes('{"error":{"message":"bad key"}}') });
  assert.throws(() => providerApi.check(config(), 1), (e) => e.kind === "auth" && e.message === "bad key");
  globalThis.hostSend = () => {
    throw { payload: { tag: "denied", val: "evil.example" } };
  };
  assert.throws(() => providerApi.listModels(config(), undefined), (e) => e.kind === "permission");
  globalThis.hostSend = () => ({ status: 200, headers: [], body: bytes("not json") });
  assert.throws(() => providerApi.listModels(config(), undefined), (e) => e.kind === "invalid-response");
});

test("manifest and declaration", () => {
  const m = providerApi.manifest();
  assert.deepEqual([m.id, m.allowedHosts, m.needsBody, m.limitHeaders], ["jsexample", ["$base_url"], false, ["x-ratelimit-"]]);
  assert.deepEqual(m.models.map((x) => x.id), ["js-model"]);
  const d = declare.declaration();
  assert.deepEqual([d.keyEnv, d.free, d.discoverModels, d.keyless, d.limits.requestsPerMinute], [["JSEXAMPLE_API_KEY"], true, true, false, 30n]);
});
