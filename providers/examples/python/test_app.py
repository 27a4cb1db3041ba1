"""Check the "pyexample" provider's pure logic with plain python3, no wasm: `python3 test_app.py`.

The generated `wit_world` bindings exist only inside the component (and in the output of
`componentize-py -d ../../../wit -w declared-provider bindings out`), so small stand-ins for the
names app.py uses are installed first: records are dataclass-like, variants carry `.value`,
enums and flags are Python's.
"""

import sys
import types
import unittest
from dataclasses import dataclass
from enum import Enum, Flag, auto


def record(name, fields):
    return dataclass(type(name, (), {"__annotations__": {f: object for f in fields}}))


def case(name, has_value=True):
    return record(name, ["value"] if has_value else [])


def install_stubs():
    t = types.ModuleType("wit_world.imports.types")
    t.ErrorKind = Enum("ErrorKind", "BAD_REQUEST AUTH PERMISSION NOT_FOUND PAYMENT_REQUIRED RATE_LIMITED "
                       "QUOTA_EXHAUSTED CONTEXT_LENGTH CONTENT_POLICY UPSTREAM OVERLOADED TIMEOUT INVALID_RESPONSE")
    t.LimitWindow = Enum("LimitWindow", "SECOND MINUTE HOUR DAY MONTH UNKNOWN")
    t.QuotaDimension = Enum("QuotaDimension", "REQUESTS TOKENS INPUT_TOKENS OUTPUT_TOKENS CREDITS")
    t.ResponseFormat = Enum("ResponseFormat", "OPENAI TRANSLATE")
    t.StreamFraming = Enum("StreamFraming", "SSE NDJSON")

    class Capabilities(Flag):
        TOOLS = auto()
        VISION = auto()
        REASONING = auto()
        JSON_MODE = auto()
        STREAMING = auto()

    t.Capabilities = Capabilities
    records = {
        "ProviderError": "kind message status code retry_after_ms window",
        "QuotaUpdate": "dimension window limit remaining reset_after_ms scope",
        "ModelInfo": "id context_window max_output_tokens capabilities free owned_by",
        "ProviderManifest": "id name version allowed_hosts auth default_base_url needs_body limit_headers models",
        "ProviderDeclaration": "key_env keys_url discover_models keyless free limits account_settings",
        "DeclaredLimits": "requests_per_minute requests_per_day tokens_per_minute tokens_per_day",
        "ProviderConfig": "provider_id base_url settings",
        "ChatRequest": "config account model streaming params body",
        "UpstreamCall": "method url headers body response framing",
        "HttpRequest": "method url headers body timeout_ms",
    }
    for name, fields in records.items():
        setattr(t, name, record(name, fields.split()))
    for name in ["BodyEdit_Remove", "RequestBody_Passthrough", "HttpError_Denied", "HttpError_InvalidUrl",
                 "HttpError_Connect", "HttpError_Other"]:
        setattr(t, name, case(name))
    for name in ["AuthStyle_Bearer", "HttpError_Timeout", "HttpError_TooLarge"]:
        setattr(t, name, case(name, has_value=False))

    class Err(Exception):
        def __init__(self, value):
            super().__init__(value)
            self.value = value

    cpt = types.ModuleType("componentize_py_types")
    cpt.Err = Err
    imports = types.ModuleType("wit_world.imports")
    imports.types = t
    imports.http = types.ModuleType("wit_world.imports.http")
    exports = types.ModuleType("wit_world.exports")
    exports.ProviderApi = type("ProviderApi", (), {})
    exports.Declare = type("Declare", (), {})
    wit_world = types.ModuleType("wit_world")
    wit_world.exports, wit_world.imports = exports, imports
    sys.modules.update({
        "componentize_py_types": cpt,
        "wit_world": wit_world,
        "wit_world.exports": exports,
        "wit_world.imports": imports,
        "wit_world.imports.types": t,
        "wit_world.imports.http": imports.http,
    })
    return t, imports.http


T, HTTP = install_stubs()
import app  # noqa: E402

K = T.ErrorKind


def config(base="http://127.0.0.1:9000/v1"):
    return T.ProviderConfig(provider_id="py", base_url=base, settings=[])


class UrlTest(unittest.TestCase):
    def test_join(self):
        for base in ["https://h/v1", "https://h/v1/", "https://h/v1//"]:
            self.assertEqual(app.join_url(base, "chat/completions"), "https://h/v1/chat/completions")
            self.assertEqual(app.join_url(base, "/models"), "https://h/v1/models")

    def test_plan(self):
        req = T.ChatRequest(config=config("http://x/v1/"), account=3, model="m", streaming=True,
                            params=["model", "messages", "logprobs"], body=None)
        call = app.ProviderApi().chat(req)
        self.assertEqual((call.method, call.url), ("POST", "http://x/v1/chat/completions"))
        self.assertIn(("accept", "text/event-stream"), call.headers)
        self.assertEqual(call.body, T.RequestBody_Passthrough([T.BodyEdit_Remove("logprobs")]))
        self.assertEqual(call.response, T.ResponseFormat.OPENAI)
        req.streaming, req.params = False, ["model", "messages"]
        call = app.ProviderApi().chat(req)
        self.assertNotIn("accept", [k for k, _ in call.headers])
        self.assertEqual(call.body, T.RequestBody_Passthrough([]))


class LimitsTest(unittest.TestCase):
    def test_durations(self):
        cases = {"6s": 6000, "1m2.5s": 62_500, "2m59.56s": 179_560, "250ms": 250, "1h0m1s": 3_601_000,
                 "59.5": 59_500, "7.66s": 7660, "5": 5000, "30ms": 30}
        for text, ms in cases.items():
            self.assertEqual(app.parse_duration_ms(text), ms, text)
        for bad in ["soon", "5x", "", "1m2", "m"]:
            self.assertIsNone(app.parse_duration_ms(bad), bad)

    def test_openai_headers(self):
        h = [("x-ratelimit-limit-requests", "14400"), ("X-RateLimit-Remaining-Requests", "14370"),
             ("x-ratelimit-reset-requests", "2m59.56s"), ("x-ratelimit-limit-tokens", "6000"),
             ("x-ratelimit-remaining-tokens", "5997"), ("x-ratelimit-reset-tokens", "30ms")]
        u = app.ProviderApi().parse_limits(config(), 1, 200, h, None)
        self.assertEqual(len(u), 2)
        self.assertEqual((u[0].dimension, u[0].window, u[0].limit, u[0].remaining, u[0].reset_after_ms),
                         (T.QuotaDimension.REQUESTS, T.LimitWindow.MINUTE, 14400, 14370, 179_560))
        self.assertEqual((u[1].dimension, u[1].window, u[1].limit, u[1].remaining, u[1].reset_after_ms),
                         (T.QuotaDimension.TOKENS, T.LimitWindow.MINUTE, 6000, 5997, 30))
        self.assertIsNone(u[0].scope)

    def test_partial_and_none(self):
        self.assertEqual(app.limits_from_headers([]), [])
        # a reset alone says nothing about the quota
        self.assertEqual(app.limits_from_headers([("x-ratelimit-reset-requests", "1s")]), [])
        u = app.limits_from_headers([("x-ratelimit-remaining-tokens", "12.2"), ("x-ratelimit-limit-requests", "-1")])
        self.assertEqual(len(u), 1)
        self.assertEqual((u[0].dimension, u[0].remaining, u[0].limit), (T.QuotaDimension.TOKENS, 13, None))


class ErrorTest(unittest.TestCase):
    def map(self, status, body="", headers=()):
        return app.ProviderApi().map_error(config(), status, list(headers), body)

    def test_status_kinds(self):
        expected = {400: K.BAD_REQUEST, 401: K.AUTH, 402: K.PAYMENT_REQUIRED, 403: K.PERMISSION,
                    404: K.NOT_FOUND, 408: K.TIMEOUT, 413: K.BAD_REQUEST, 422: K.BAD_REQUEST,
                    429: K.RATE_LIMITED, 500: K.UPSTREAM, 502: K.UPSTREAM, 503: K.OVERLOADED,
                    504: K.TIMEOUT, 529: K.OVERLOADED}
        for status, kind in expected.items():
            e = self.map(status)
            self.assertEqual((e.kind, e.status), (kind, status), status)
            self.assertEqual(e.message, f"upstream answered HTTP {status}")

    def test_openai_shape_and_retry_after(self):
        e = self.map(429, '{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}',
                     [("retry-after", "7")])
        self.assertEqual((e.kind, e.message, e.code, e.retry_after_ms, e.window),
                         (K.RATE_LIMITED, "Rate limit reached", "rate_limit_exceeded", 7000, T.LimitWindow.UNKNOWN))
        self.assertEqual(self.map(429, "", [("retry-after-ms", "1500.2"), ("retry-after", "9")]).retry_after_ms, 1501)
        self.assertEqual(self.map(429, "", [("retry-after", "0.0001")]).retry_after_ms, 1)
        self.assertEqual(self.map(429, "", [("retry-after", "-3")]).retry_after_ms, 0)
        self.assertIsNone(self.map(429, "", [("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]).retry_after_ms)

    def test_refined_kinds(self):
        e = self.map(400, '{"message":"context length exceeded","type":"invalid_request_error","code":"context_length_exceeded"}')
        self.assertEqual((e.kind, e.code), (K.CONTEXT_LENGTH, "context_length_exceeded"))
        e = self.map(429, '{"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}}')
        self.assertEqual((e.kind, e.window), (K.QUOTA_EXHAUSTED, T.LimitWindow.DAY))
        e = self.map(429, '{"message":"Tokens per minute limit exceeded - too many tokens processed."}')
        self.assertEqual(e.kind, K.RATE_LIMITED, "a token quota, not the context length")
        self.assertEqual(self.map(400, '{"error":{"message":"flagged by content_filter"}}').kind, K.CONTENT_POLICY)
        self.assertEqual(self.map(400, '{"error":{"message":"API key not valid."}}').kind, K.AUTH)

    def test_other_shapes(self):
        self.assertEqual(self.map(400, '{"error":"bad thing"}').message, "bad thing")
        self.assertEqual(self.map(502, "<html>bad gateway</html>").message, "<html>bad gateway</html>")
        self.assertEqual(self.map(503, '{"detail":"Model is loading"}').message, "Model is loading")
        self.assertEqual(self.map(500, '[{"error":{"code":500,"message":"boom"}}]').code, "500")


class ModelsTest(unittest.TestCase):
    def test_list_through_host_http(self):
        seen = {}

        def send(req, auth):
            seen["req"], seen["auth"] = req, auth
            return types.SimpleNamespace(
                status=200, headers=[],
                body=b'{"object":"list","data":[{"id":"sim-model","owned_by":"sim"},{"id":"m2","context_length":8192},{"x":1}]}')

        HTTP.send = send
        models = app.ProviderApi().list_models(config("http://h/v1/"), 7)
        self.assertEqual((seen["req"].method, seen["req"].url, seen["auth"]), ("GET", "http://h/v1/models", 7))
        self.assertEqual([m.id for m in models], ["sim-model", "m2"])
        self.assertEqual((models[0].owned_by, models[1].context_window), ("sim", 8192))

    def test_errors(self):
        HTTP.send = lambda req, auth: types.SimpleNamespace(status=401, headers=[], body=b'{"error":{"message":"bad key"}}')
        with self.assertRaises(sys.modules["componentize_py_types"].Err) as cm:
            app.ProviderApi().check(config(), 1)
        self.assertEqual((cm.exception.value.kind, cm.exception.value.message), (K.AUTH, "bad key"))

        def refuse(req, auth):
            raise sys.modules["componentize_py_types"].Err(T.HttpError_Denied("host not allowed"))

        HTTP.send = refuse
        with self.assertRaises(sys.modules["componentize_py_types"].Err) as cm:
            app.ProviderApi().list_models(config(), None)
        self.assertEqual(cm.exception.value.kind, K.PERMISSION)
        HTTP.send = lambda req, auth: types.SimpleNamespace(status=200, headers=[], body=b"not json")
        with self.assertRaises(sys.modules["componentize_py_types"].Err) as cm:
            app.ProviderApi().list_models(config(), None)
        self.assertEqual(cm.exception.value.kind, K.INVALID_RESPONSE)


class ManifestTest(unittest.TestCase):
    def test_manifest_and_declaration(self):
        m = app.ProviderApi().manifest()
        self.assertEqual((m.id, m.allowed_hosts, m.needs_body, m.limit_headers),
                         ("pyexample", ["$base_url"], False, ["x-ratelimit-"]))
        self.assertEqual([x.id for x in m.models], ["py-model"])
        d = app.Declare().declaration()
        self.assertEqual((d.key_env, d.free, d.discover_models, d.keyless, d.limits.requests_per_minute),
                         (["PYEXAMPLE_API_KEY"], True, True, False, 30))


if __name__ == "__main__":
    unittest.main()
