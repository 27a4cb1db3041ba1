// {{Name}}: a Freeway provider component for an OpenAI-compatible upstream, in JavaScript.
//
// A passthrough adapter: the gateway sends the client's body on (model rewritten, usage reporting
// injected for streams, the edits `chat` asks for applied) and pipes the JSON or SSE answer back
// natively, so `chat` only plans the call. The gateway attaches the account's key (manifest
// `auth`); the component never sees it.
//
// It also declares the provider it serves (`declare.declaration`), so dropping `{{name}}.wasm`
// into the gateway's providers folder with `{{ENV}}_API_KEY` set is the whole installation.
//
// Build: `npm install && npm run build` (see package.json).
//
// Bindings, as componentize-js maps the WIT in wit/: an exported interface is an object
// (`provider-api` -> `providerApi`); record fields are camelCase; option<T> is T or undefined;
// u64 is a BigInt; enums are strings ("rate-limited"); variants are { tag, val }; flags are
// objects of booleans; list<u8> is a Uint8Array. A `result` error is returned by throwing the
// error value itself (a plain object, not an Error); an imported function's error is thrown as
// an exception whose `payload` is the error value.

import { send } from "freeway:gateway/http@0.1.1";

// The provider id: the gateway's name for it (`{{id}}/<model>`), and the `{{ENV}}_*` variables.
const ID = "{{id}}";
// TODO: your upstream's OpenAI-compatible base URL (`{{ENV}}_BASE_URL` overrides it).
const DEFAULT_BASE_URL = "https://api.{{id}}.invalid/v1";
// Parameters the upstream rejects, e.g. ["logprobs", "logit_bias"]: removed from the body.
const DROP_PARAMS = [];

// `base` + `path` with exactly one `/` between them.
export function joinUrl(base, path) {
  return `${base.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}

function header(headers, name) {
  const found = headers.find(([k]) => k.toLowerCase() === name);
  return found ? found[1].trim() : undefined;
}

// A number as providers write it ("12", "59.5"), or undefined.
function number(text) {
  return text !== undefined && /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text.trim()) ? Number(text) : undefined;
}

// A non-negative finite amount (a count, milliseconds), rounded up, as a u64 (BigInt).
function roundedUp(v) {
  return Number.isFinite(v) && v >= 0 ? BigInt(Math.ceil(v)) : undefined;
}

const UNITS = { ms: 1, h: 3_600_000, m: 60_000, s: 1000 };

// "6s", "1m2.5s", "250ms" or bare seconds ("59.5") -> milliseconds (BigInt).
export function parseDurationMs(text) {
  if (text === undefined) return undefined;
  const secs = number(text);
  if (secs !== undefined) return roundedUp(secs * 1000);
  const parts = text.trim().match(/\d*\.?\d+(ms|h|m|s)/g);
  if (!parts || parts.join("") !== text.trim()) return undefined;
  return roundedUp(parts.reduce((t, p) => {
    const unit = p.match(/(ms|h|m|s)$/)[1];
    return t + Number(p.slice(0, -unit.length)) * UNITS[unit];
  }, 0));
}

// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, both per minute.
export function limitsFromHeaders(headers) {
  const out = [];
  for (const [suffix, dimension] of [["requests", "requests"], ["tokens", "tokens"]]) {
    const count = (name) => {
      const v = number(header(headers, `x-ratelimit-${name}-${suffix}`));
      return v === undefined ? undefined : roundedUp(v);
    };
    const limit = count("limit");
    const remaining = count("remaining");
    if (limit === undefined && remaining === undefined) continue;
    const resetAfterMs = parseDurationMs(header(headers, `x-ratelimit-reset-${suffix}`));
    out.push({ dimension, window: "minute", limit, remaining, resetAfterMs, scope: undefined });
  }
  return out;
}

function error(kind, message, status = 0) {
  return { kind, message, status, code: undefined, retryAfterMs: undefined, window: undefined };
}

const KINDS = {
  400: "bad-request", 401: "auth", 402: "payment-required", 403: "permission", 404: "not-found",
  408: "timeout", 413: "bad-request", 415: "bad-request", 422: "bad-request", 429: "rate-limited",
  503: "overloaded", 504: "timeout", 524: "timeout", 529: "overloaded",
};

// `retry-after-ms`, else `retry-after` in seconds (an HTTP date is not read).
function retryAfterMs(headers) {
  for (const [name, scale] of [["retry-after-ms", 1], ["retry-after", 1000]]) {
    const v = number(header(headers, name));
    if (v !== undefined) return roundedUp(v * scale) ?? 0n; // zero or negative: may retry now
  }
  return undefined;
}

// An upstream error response -> a typed error: the kind from the status, refined by the body
// (`{"error": {"message", "code", "type"}}`, `{"error": "text"}` or top-level fields).
export function errorFromResponse(status, headers, body) {
  let v;
  try {
    v = JSON.parse(body);
  } catch {
    v = undefined;
  }
  const isObject = (x) => x !== null && typeof x === "object" && !Array.isArray(x);
  const obj = isObject(v) && isObject(v.error) ? v.error : isObject(v) ? v : {};
  let message = isObject(v) && typeof v.error === "string" ? v.error : obj.message;
  if (typeof message !== "string" || !message) {
    message = v === undefined && body.trim() ? body.trim().slice(0, 500) : `upstream answered HTTP ${status}`;
  }
  const code = [obj.code, obj.type].find((c) => (typeof c === "string" && c) || typeof c === "number");
  let kind = KINDS[status] ?? "upstream";
  const said = `${code ?? ""} ${message}`.toLowerCase();
  const has = (...needles) => needles.some((n) => said.includes(n));
  if (kind === "rate-limited") {
    if (has("per day", "daily", "quota exceeded", "insufficient_quota")) kind = "quota-exhausted";
  } else if (has("context_length", "context length", "maximum context", "too many tokens", "context window")) {
    kind = "context-length";
  } else if (has("content_policy", "content policy", "content_filter")) {
    kind = "content-policy";
  } else if (has("insufficient_quota", "insufficient credits")) {
    kind = "payment-required";
  }
  const window = { "quota-exhausted": "day", "rate-limited": "unknown" }[kind];
  return {
    kind,
    message,
    status,
    code: code === undefined ? undefined : String(code),
    retryAfterMs: retryAfterMs(headers),
    window,
  };
}

// `GET {base_url}/models` through the gateway (which attaches the key) -> model infos.
function listModels(config, account) {
  const req = {
    method: "GET",
    url: joinUrl(config.baseUrl, "models"),
    headers: [["accept", "application/json"]],
    body: new Uint8Array(0),
    timeoutMs: 20000,
  };
  let resp;
  try {
    resp = send(req, account);
  } catch (e) {
    const failure = e && e.payload !== undefined ? e.payload : { tag: "other", val: String(e) };
    const kind = { denied: "permission", timeout: "timeout", "invalid-url": "bad-request" }[failure.tag] ?? "upstream";
    throw error(kind, `GET models: ${failure.tag}${failure.val !== undefined ? `: ${failure.val}` : ""}`);
  }
  const text = new TextDecoder().decode(resp.body);
  if (resp.status < 200 || resp.status >= 300) throw errorFromResponse(resp.status, resp.headers, text);
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw error("invalid-response", `the model list is not JSON: ${e}`);
  }
  const data = Array.isArray(v) ? v : v && v.data;
  if (!Array.isArray(data)) throw error("invalid-response", "the model list has no `data` array");
  return data
    .filter((m) => m && typeof m.id === "string")
    .map((m) => ({
      id: m.id,
      contextWindow: undefined,
      maxOutputTokens: undefined,
      capabilities: { tools: false, vision: false, reasoning: false, jsonMode: false, streaming: true },
      free: undefined,
      ownedBy: typeof m.owned_by === "string" ? m.owned_by : undefined,
    }));
}

export const providerApi = {
  manifest() {
    return {
      id: ID,
      name: "{{Name}}",
      version: "0.1.0",
      // `$base_url`: the host of the base URL the gateway uses for this provider
      allowedHosts: ["$base_url"],
      auth: { tag: "bearer" }, // or { tag: "header", val: "x-api-key" }, { tag: "query", val: "key" }
      defaultBaseUrl: DEFAULT_BASE_URL,
      needsBody: false, // plan from the parameter names; the body stays in the gateway
      limitHeaders: ["x-ratelimit-"],
      models: [], // models known without asking upstream (the rest come from listModels)
    };
  },

  chat(req) {
    const headers = [["content-type", "application/json"]];
    if (req.streaming) headers.push(["accept", "text/event-stream"]);
    const edits = DROP_PARAMS.filter((p) => req.params.includes(p)).map((p) => ({ tag: "remove", val: p }));
    return {
      method: "POST",
      url: joinUrl(req.config.baseUrl, "chat/completions"),
      headers,
      body: { tag: "passthrough", val: edits },
      response: "openai",
      framing: "sse",
    };
  },

  // Never called with response "openai": the gateway pipes the answers itself.
  translateResponse(_body) {
    throw error("invalid-response", "this provider does not translate responses");
  },
  translateEvent(_event) {
    throw error("invalid-response", "this provider does not translate streams");
  },
  finishStream() {
    throw error("invalid-response", "this provider does not translate streams");
  },

  mapError(_config, status, headers, body) {
    return errorFromResponse(status, headers, body);
  },

  parseLimits(_config, _account, _status, headers, _body) {
    return limitsFromHeaders(headers);
  },

  listModels(config, account) {
    return listModels(config, account);
  },

  check(config, account) {
    listModels(config, account);
  },
};

export const declare = {
  declaration() {
    return {
      keyEnv: ["{{ENV}}_API_KEY"],
      keysUrl: undefined,
      discoverModels: true, // list the upstream's models (listModels)
      keyless: false,
      free: true, // false: enabled from the environment only with FREEWAY_PAID_PROVIDERS
      limits: { requestsPerMinute: undefined, requestsPerDay: undefined, tokensPerMinute: undefined, tokensPerDay: undefined },
      accountSettings: [],
    };
  },
};
