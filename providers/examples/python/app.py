"""Freeway provider "pyexample": an OpenAI-compatible upstream, written in Python.

A passthrough adapter: the host sends the client's body on (model rewritten, usage reporting
injected for streams, `logprobs` removed by this adapter) and pipes the JSON or SSE answer back
natively, so `chat` only plans the call from the parameter names. Error responses are typed by
`map_error`, `x-ratelimit-*` headers become quota updates in `parse_limits`, and the model list
is read from `GET {base_url}/models` through the host's `http` import.

It exports `declare` too (world `declared-provider`), so dropping `pyexample.wasm` into the
gateway's providers folder with `PYEXAMPLE_API_KEY` set is the whole installation
(`PYEXAMPLE_BASE_URL` points it at another OpenAI-compatible server).

Build (from this folder; wit/ is the repository's WIT package):
  componentize-py -d ../../../wit -w declared-provider componentize app -o pyexample.wasm
Test the pure logic without wasm:
  python3 test_app.py
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
    HttpError_InvalidUrl,
    HttpError_Timeout,
    HttpError_TooLarge,
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

ID = "pyexample"
VERSION = "0.1.0"
DEFAULT_BASE_URL = "https://api.pyexample.invalid/v1"

Headers = List[Tuple[str, str]]


# ---------------------------------------------------------------------------------------------
# Pure logic (tested by test_app.py without wasm)


def join_url(base: str, path: str) -> str:
    """`base` + `path` with exactly one `/` between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def header(headers: Headers, name: str) -> Optional[str]:
    """The first header called `name` (any case), trimmed."""
    for k, v in headers:
        if k.lower() == name:
            return v.strip()
    return None


def _ms(value: float) -> Optional[int]:
    """A non-negative finite amount, rounded up (milliseconds or a count)."""
    return math.ceil(value) if math.isfinite(value) and value >= 0 else None


def _float(text: str) -> Optional[float]:
    try:
        return float(text) if "_" not in text else None
    except ValueError:
        return None


def parse_duration_ms(text: str) -> Optional[int]:
    """`"6s"`, `"1m2.5s"`, `"2h0m3s"`, `"250ms"` or bare seconds (`"59.5"`) -> milliseconds."""
    s = text.strip()
    if not s:
        return None
    secs = _float(s)
    if secs is not None:
        return _ms(secs * 1000.0)
    units = {"h": 3_600_000.0, "m": 60_000.0, "s": 1000.0, "ms": 1.0}
    total, num, i, any_unit = 0.0, "", 0, False
    while i < len(s):
        c = s[i]
        if c in "0123456789.":
            num += c
            i += 1
            continue
        unit = "ms" if s.startswith("ms", i) else c
        value = _float(num)
        if value is None or unit not in units:
            return None
        total += value * units[unit]
        num, i, any_unit = "", i + len(unit), True
    if num or not any_unit:
        return None
    return _ms(total)


def _read_triplet(headers: Headers, suffix: str, dimension, window) -> Optional[QuotaUpdate]:
    """`x-ratelimit-{limit,remaining,reset}-{suffix}` -> one update, if a count is there."""

    def number(name: str) -> Optional[int]:
        v = header(headers, name)
        f = _float(v) if v is not None else None
        return _ms(f) if f is not None else None

    limit = number(f"x-ratelimit-limit-{suffix}")
    remaining = number(f"x-ratelimit-remaining-{suffix}")
    reset = header(headers, f"x-ratelimit-reset-{suffix}")
    if limit is None and remaining is None:
        return None
    return QuotaUpdate(
        dimension=dimension,
        window=window,
        limit=limit,
        remaining=remaining,
        reset_after_ms=parse_duration_ms(reset) if reset is not None else None,
        scope=None,
    )


def limits_from_headers(headers: Headers) -> List[QuotaUpdate]:
    """OpenAI's `x-ratelimit-*-requests` / `-tokens` headers; both count per minute."""
    out = []
    for suffix, dimension in (("requests", QuotaDimension.REQUESTS), ("tokens", QuotaDimension.TOKENS)):
        u = _read_triplet(headers, suffix, dimension, LimitWindow.MINUTE)
        if u is not None:
            out.append(u)
    return out


def kind_for_status(status: int):
    """The kind of error an HTTP status usually means."""
    if status in (400, 413, 415, 422):
        return ErrorKind.BAD_REQUEST
    if status in (408, 504, 524):
        return ErrorKind.TIMEOUT
    if status in (503, 529):
        return ErrorKind.OVERLOADED
    return {
        401: ErrorKind.AUTH,
        402: ErrorKind.PAYMENT_REQUIRED,
        403: ErrorKind.PERMISSION,
        404: ErrorKind.NOT_FOUND,
        429: ErrorKind.RATE_LIMITED,
    }.get(status, ErrorKind.UPSTREAM)


def retry_after_ms(headers: Headers) -> Optional[int]:
    """`retry-after-ms`, else `retry-after` in seconds (an HTTP date is not read)."""
    for name, scale in (("retry-after-ms", 1.0), ("retry-after", 1000.0)):
        v = header(headers, name)
        f = _float(v) if v is not None else None
        if f is not None:
            return _ms(f * scale) or 0  # zero or negative: may retry now
    return None


def parse_error_body(body: str) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """(message, code, type) from `{"error": {...}}`, `{"error": "text"}`, top-level
    `{"message", "code", "type"}`, or plain text."""
    try:
        v = json.loads(body)
    except ValueError:
        text = body.strip()
        return (text[:500] or None, None, None)
    if isinstance(v, list):
        v = v[0] if v else None
    if not isinstance(v, dict):
        return (None, None, None)
    err = v.get("error")
    obj = err if isinstance(err, dict) else v
    message = err if isinstance(err, str) else obj.get("message")
    if not isinstance(message, str):
        detail = obj.get("detail")
        message = detail if isinstance(detail, str) else (json.dumps(detail) if detail is not None else None)
    code = obj.get("code")
    code = str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) and code != "" else None
    kind = obj.get("type")
    return (message, code, kind if isinstance(kind, str) else None)


def _refine(kind, message: Optional[str], code: Optional[str], type_: Optional[str]):
    """Refine a status-based kind with what the body says."""
    text = " ".join([code or "", type_ or "", message or ""]).lower()

    def has(*needles):
        return any(n in text for n in needles)

    if has("api key not valid", "api key expired", "api key not found"):
        return ErrorKind.AUTH
    # a 429 is a rate limit even when it talks about tokens
    if kind != ErrorKind.RATE_LIMITED and has(
        "exceeds the maximum number of tokens", "context_length", "context length", "maximum context",
        "too many tokens", "prompt is too long", "context window",
    ):
        return ErrorKind.CONTEXT_LENGTH
    if kind != ErrorKind.RATE_LIMITED and has("content_policy", "content policy", "content_filter", "safety", "moderation"):
        return ErrorKind.CONTENT_POLICY
    if kind == ErrorKind.RATE_LIMITED and has("per day", "daily", "quota exceeded", "insufficient_quota"):
        return ErrorKind.QUOTA_EXHAUSTED
    if has("insufficient_quota", "insufficient credits", "credit balance"):
        return ErrorKind.PAYMENT_REQUIRED
    return kind


def error_from_response(status: int, headers: Headers, body: str) -> ProviderError:
    """A typed error from an upstream error response."""
    message, code, type_ = parse_error_body(body)
    kind = _refine(kind_for_status(status), message, code, type_)
    window = {ErrorKind.QUOTA_EXHAUSTED: LimitWindow.DAY, ErrorKind.RATE_LIMITED: LimitWindow.UNKNOWN}.get(kind)
    return ProviderError(
        kind=kind,
        message=message or f"upstream answered HTTP {status}",
        status=status,
        code=code or type_,
        retry_after_ms=retry_after_ms(headers),
        window=window,
    )


def plain_error(kind, message: str, status: int = 0) -> ProviderError:
    return ProviderError(kind=kind, message=message, status=status, code=None, retry_after_ms=None, window=None)


def http_error(e) -> ProviderError:
    """A transport failure of the host's `http.send` as a typed error."""
    if isinstance(e, HttpError_Denied):
        return plain_error(ErrorKind.PERMISSION, e.value)
    if isinstance(e, HttpError_InvalidUrl):
        return plain_error(ErrorKind.BAD_REQUEST, f"invalid URL: {e.value}")
    if isinstance(e, HttpError_Connect):
        return plain_error(ErrorKind.UPSTREAM, f"cannot connect: {e.value}")
    if isinstance(e, HttpError_Timeout):
        return plain_error(ErrorKind.TIMEOUT, "the upstream did not answer in time")
    if isinstance(e, HttpError_TooLarge):
        return plain_error(ErrorKind.INVALID_RESPONSE, "the upstream response was too large")
    return plain_error(ErrorKind.UPSTREAM, str(getattr(e, "value", e)))


def models_from_json(text: str) -> List[ModelInfo]:
    """An OpenAI-style model list (`{"data": [{"id": ...}, ...]}`) -> model infos."""
    try:
        v = json.loads(text)
    except ValueError as e:
        raise Err(plain_error(ErrorKind.INVALID_RESPONSE, f"the model list is not JSON: {e}"))
    data = v.get("data") if isinstance(v, dict) else v
    if not isinstance(data, list):
        raise Err(plain_error(ErrorKind.INVALID_RESPONSE, "the model list has no `data` array"))
    out = []
    for m in data:
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            continue
        ctx = m.get("context_window", m.get("context_length"))
        owner = m.get("owned_by")
        out.append(
            ModelInfo(
                id=m["id"],
                context_window=ctx if isinstance(ctx, int) and not isinstance(ctx, bool) and 0 <= ctx < 2**32 else None,
                max_output_tokens=None,
                capabilities=Capabilities.STREAMING,
                free=None,
                owned_by=owner if isinstance(owner, str) else None,
            )
        )
    return out


def plan_chat(req: ChatRequest) -> UpstreamCall:
    """`POST {base_url}/chat/completions` with the client's body, `logprobs` dropped."""
    headers = [("content-type", "application/json")]
    if req.streaming:
        headers.append(("accept", "text/event-stream"))
    edits = [BodyEdit_Remove("logprobs")] if "logprobs" in req.params else []
    return UpstreamCall(
        method="POST",
        url=join_url(req.config.base_url, "chat/completions"),
        headers=headers,
        body=RequestBody_Passthrough(edits),
        response=ResponseFormat.OPENAI,
        framing=StreamFraming.SSE,
    )


# ---------------------------------------------------------------------------------------------
# The component's exports


def list_models(config: ProviderConfig, account: Optional[int]) -> List[ModelInfo]:
    req = HttpRequest(
        method="GET",
        url=join_url(config.base_url, "models"),
        headers=[("accept", "application/json")],
        body=b"",
        timeout_ms=20_000,
    )
    try:
        resp = http.send(req, account)
    except Err as e:
        raise Err(http_error(e.value))
    text = bytes(resp.body).decode("utf-8", errors="replace")
    if not 200 <= resp.status < 300:
        raise Err(error_from_response(resp.status, resp.headers, text))
    return models_from_json(text)


class ProviderApi(exports.ProviderApi):
    def manifest(self) -> ProviderManifest:
        return ProviderManifest(
            id=ID,
            name="Python example",
            version=VERSION,
            allowed_hosts=["$base_url"],
            auth=AuthStyle_Bearer(),
            default_base_url=DEFAULT_BASE_URL,
            needs_body=False,
            limit_headers=["x-ratelimit-"],
            models=[
                ModelInfo(
                    id="py-model",
                    context_window=32_768,
                    max_output_tokens=4_096,
                    capabilities=Capabilities.STREAMING | Capabilities.TOOLS | Capabilities.JSON_MODE,
                    free=True,
                    owned_by=ID,
                )
            ],
        )

    def chat(self, req: ChatRequest) -> UpstreamCall:
        return plan_chat(req)

    # response-format openai: the host pipes answers natively and never calls these
    def translate_response(self, body: str) -> str:
        raise Err(plain_error(ErrorKind.INVALID_RESPONSE, "this provider does not translate responses"))

    def translate_event(self, event) -> List[str]:
        raise Err(plain_error(ErrorKind.INVALID_RESPONSE, "this provider does not translate streams"))

    def finish_stream(self) -> List[str]:
        raise Err(plain_error(ErrorKind.INVALID_RESPONSE, "this provider does not translate streams"))

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
            key_env=["PYEXAMPLE_API_KEY"],
            keys_url=None,
            discover_models=True,
            keyless=False,
            free=True,
            limits=DeclaredLimits(
                requests_per_minute=30, requests_per_day=None, tokens_per_minute=None, tokens_per_day=None
            ),
            account_settings=[],
        )
