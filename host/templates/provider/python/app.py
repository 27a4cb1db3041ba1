"""{{Name}}: a Freeway provider component for an OpenAI-compatible upstream, in Python.

A passthrough adapter: the gateway sends the client's body on (model rewritten, usage reporting
injected for streams, the edits `chat` asks for applied) and pipes the JSON or SSE answer back
natively, so `chat` only plans the call. The gateway attaches the account's key (manifest
`auth`); the component never sees it.

It also declares the provider it serves (`Declare.declaration`), so dropping `{{name}}.wasm` into
the gateway's providers folder with `{{ENV}}_API_KEY` set is the whole installation.

Build: componentize-py -d wit -w declared-provider componentize app -o {{name}}.wasm
"""

import json
import math
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import http
from wit_world.imports.types import (
    AuthStyle_Bearer,
    BodyEdit_Remove,
    Capabilities,
    ChatRequest,
    DeclaredLimits,
    ErrorKind,
    HttpError_Connect,
    HttpError_Denied,
    HttpError_Timeout,
    HttpRequest,
    LimitWindow,
    ModelInfo,
    ProviderConfig,
    ProviderDeclaration,
    ProviderError,
    ProviderManifest,
    QuotaDimension,
    QuotaUpdate,
    RequestBody_Passthrough,
    ResponseFormat,
    StreamFraming,
    UpstreamCall,
)

# The provider id: the gateway's name for it (`{{id}}/<model>`), and the `{{ENV}}_*` variables.
ID = "{{id}}"
# TODO: your upstream's OpenAI-compatible base URL (`{{ENV}}_BASE_URL` overrides it).
DEFAULT_BASE_URL = "https://api.{{id}}.invalid/v1"
# Parameters the upstream rejects, e.g. ["logprobs", "logit_bias"]: removed from the body.
DROP_PARAMS: List[str] = []

Headers = List[Tuple[str, str]]


def join_url(base: str, path: str) -> str:
    """`base` + `path` with exactly one `/` between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def header(headers: Headers, name: str) -> Optional[str]:
    return next((v.strip() for k, v in headers if k.lower() == name), None)


def number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def rounded_up(v: float) -> Optional[int]:
    """A non-negative finite amount (a count, milliseconds), rounded up."""
    return math.ceil(v) if math.isfinite(v) and v >= 0 else None


def count(text: Optional[str]) -> Optional[int]:
    v = number(text)
    return rounded_up(v) if v is not None else None


UNITS = {"ms": 1.0, "h": 3_600_000.0, "m": 60_000.0, "s": 1000.0}


def parse_duration_ms(text: Optional[str]) -> Optional[int]:
    """`"6s"`, `"1m2.5s"`, `"250ms"` or bare seconds (`"59.5"`) -> milliseconds."""
    secs = number(text)
    if text is None or secs is not None:
        return rounded_up(secs * 1000.0) if secs is not None else None
    total, num, rest, any_unit = 0.0, "", text.strip(), False
    while rest:
        if rest[0] in "0123456789.":
            num, rest = num + rest[0], rest[1:]
            continue
        unit = next((u for u in UNITS if rest.startswith(u)), None)
        value = number(num)
        if unit is None or value is None:
            return None
        total, num, rest, any_unit = total + value * UNITS[unit], "", rest[len(unit):], True
    return rounded_up(total) if any_unit and not num else None


def retry_after_ms(headers: Headers) -> Optional[int]:
    """`retry-after-ms`, else `retry-after` in seconds (an HTTP date is not read)."""
    for name, scale in (("retry-after-ms", 1.0), ("retry-after", 1000.0)):
        v = number(header(headers, name))
        if v is not None:
            return rounded_up(v * scale) or 0  # zero or negative: may retry now
    return None


def limits_from_headers(headers: Headers) -> List[QuotaUpdate]:
    """OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, per minute."""
    out = []
    for suffix, dimension in (("requests", QuotaDimension.REQUESTS), ("tokens", QuotaDimension.TOKENS)):
        limit = count(header(headers, f"x-ratelimit-limit-{suffix}"))
        remaining = count(header(headers, f"x-ratelimit-remaining-{suffix}"))
        if limit is not None or remaining is not None:
            reset = parse_duration_ms(header(headers, f"x-ratelimit-reset-{suffix}"))
            out.append(QuotaUpdate(dimension, LimitWindow.MINUTE, limit, remaining, reset, None))
    return out


def error(kind, message: str, status: int = 0) -> ProviderError:
    return ProviderError(kind=kind, message=message, status=status, code=None, retry_after_ms=None, window=None)


KINDS = {400: ErrorKind.BAD_REQUEST, 401: ErrorKind.AUTH, 402: ErrorKind.PAYMENT_REQUIRED,
         403: ErrorKind.PERMISSION, 404: ErrorKind.NOT_FOUND, 408: ErrorKind.TIMEOUT,
         413: ErrorKind.BAD_REQUEST, 415: ErrorKind.BAD_REQUEST, 422: ErrorKind.BAD_REQUEST,
         429: ErrorKind.RATE_LIMITED, 503: ErrorKind.OVERLOADED, 504: ErrorKind.TIMEOUT,
         524: ErrorKind.TIMEOUT, 529: ErrorKind.OVERLOADED}


def error_from_response(status: int, headers: Headers, body: str) -> ProviderError:
    """An upstream error response -> a typed error: the kind from the status, refined by the body
    (`{"error": {"message", "code", "type"}}`, `{"error": "text"}` or top-level fields)."""
    try:
        v = json.loads(body)
    except ValueError:
        v = None
    obj = v.get("error") if isinstance(v, dict) and isinstance(v.get("error"), dict) else v
    obj = obj if isinstance(obj, dict) else {}
    message = v.get("error") if isinstance(v, dict) and isinstance(v.get("error"), str) else obj.get("message")
    if not isinstance(message, str) or not message:
        message = body.strip()[:500] if v is None and body.strip() else f"upstream answered HTTP {status}"
    code = next((str(c) for c in (obj.get("code"), obj.get("type"))
                 if isinstance(c, (str, int)) and not isinstance(c, bool) and c != ""), None)
    kind = KINDS.get(status, ErrorKind.UPSTREAM)
    said = f"{code or ''} {message}".lower()
    has = lambda *needles: any(n in said for n in needles)  # noqa: E731
    if kind == ErrorKind.RATE_LIMITED:
        if has("per day", "daily", "quota exceeded", "insufficient_quota"):
            kind = ErrorKind.QUOTA_EXHAUSTED
    elif has("context_length", "context length", "maximum context", "too many tokens", "context window"):
        kind = ErrorKind.CONTEXT_LENGTH
    elif has("content_policy", "content policy", "content_filter"):
        kind = ErrorKind.CONTENT_POLICY
    elif has("insufficient_quota", "insufficient credits"):
        kind = ErrorKind.PAYMENT_REQUIRED
    window = {ErrorKind.QUOTA_EXHAUSTED: LimitWindow.DAY, ErrorKind.RATE_LIMITED: LimitWindow.UNKNOWN}.get(kind)
    return ProviderError(kind=kind, message=message, status=status, code=code, retry_after_ms=retry_after_ms(headers),
                         window=window)


def list_models(config: ProviderConfig, account: Optional[int]) -> List[ModelInfo]:
    """`GET {base_url}/models` through the gateway (which attaches the key) -> model infos."""
    req = HttpRequest("GET", join_url(config.base_url, "models"), [("accept", "application/json")], b"", 20_000)
    try:
        resp = http.send(req, account)
    except Err as e:
        kind = {HttpError_Denied: ErrorKind.PERMISSION, HttpError_Connect: ErrorKind.UPSTREAM,
                HttpError_Timeout: ErrorKind.TIMEOUT}.get(type(e.value), ErrorKind.UPSTREAM)
        detail = getattr(e.value, "value", None) or type(e.value).__name__.split("_")[-1].lower()
        raise Err(error(kind, f"GET models: {detail}"))
    text = bytes(resp.body).decode("utf-8", errors="replace")
    if not 200 <= resp.status < 300:
        raise Err(error_from_response(resp.status, resp.headers, text))
    try:
        v = json.loads(text)
    except ValueError as e:
        raise Err(error(ErrorKind.INVALID_RESPONSE, f"the model list is not JSON: {e}"))
    data = v.get("data") if isinstance(v, dict) else v
    if not isinstance(data, list):
        raise Err(error(ErrorKind.INVALID_RESPONSE, "the model list has no `data` array"))
    return [
        ModelInfo(m["id"], None, None, Capabilities.STREAMING, None,
                  m.get("owned_by") if isinstance(m.get("owned_by"), str) else None)
        for m in data
        if isinstance(m, dict) and isinstance(m.get("id"), str)
    ]


class ProviderApi(exports.ProviderApi):
    def manifest(self) -> ProviderManifest:
        return ProviderManifest(
            id=ID,
            name="{{Name}}",
            version="0.1.0",
            # `$base_url`: the host of the base URL the gateway uses for this provider
            allowed_hosts=["$base_url"],
            auth=AuthStyle_Bearer(),  # or AuthStyle_Header("x-api-key"), AuthStyle_Query("key")
            default_base_url=DEFAULT_BASE_URL,
            needs_body=False,  # plan from the parameter names; the body stays in the gateway
            limit_headers=["x-ratelimit-"],
            models=[],  # models known without asking upstream (the rest come from list_models)
        )

    def chat(self, req: ChatRequest) -> UpstreamCall:
        headers = [("content-type", "application/json")]
        if req.streaming:
            headers.append(("accept", "text/event-stream"))
        edits = [BodyEdit_Remove(p) for p in DROP_PARAMS if p in req.params]
        return UpstreamCall("POST", join_url(req.config.base_url, "chat/completions"), headers,
                            RequestBody_Passthrough(edits), ResponseFormat.OPENAI, StreamFraming.SSE)

    # Never called with ResponseFormat.OPENAI: the gateway pipes the answers itself.
    def translate_response(self, body: str) -> str:
        raise Err(error(ErrorKind.INVALID_RESPONSE, "this provider does not translate responses"))

    def translate_event(self, event) -> List[str]:
        raise Err(error(ErrorKind.INVALID_RESPONSE, "this provider does not translate streams"))

    def finish_stream(self) -> List[str]:
        raise Err(error(ErrorKind.INVALID_RESPONSE, "this provider does not translate streams"))

    def map_error(self, config: ProviderConfig, status: int, headers: Headers, body: str) -> ProviderError:
        return error_from_response(status, headers, body)

    def parse_limits(self, config, account, status, headers, body) -> List[QuotaUpdate]:
        return limits_from_headers(headers)

    def list_models(self, config: ProviderConfig, account: Optional[int]) -> List[ModelInfo]:
        return list_models(config, account)

    def check(self, config: ProviderConfig, account: int) -> None:
        list_models(config, account)


class Declare(exports.Declare):
    def declaration(self) -> Optional[ProviderDeclaration]:
        return ProviderDeclaration(
            key_env=["{{ENV}}_API_KEY"],
            keys_url=None,
            discover_models=True,  # list the upstream's models (list_models)
            keyless=False,
            free=True,  # False: enabled from the environment only with FREEWAY_PAID_PROVIDERS
            limits=DeclaredLimits(requests_per_minute=None, requests_per_day=None,
                                  tokens_per_minute=None, tokens_per_day=None),
            account_settings=[],
        )
