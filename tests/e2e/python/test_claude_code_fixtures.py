"""Claude Code's own Messages calls (tests/e2e/fixtures/claude-code/*.json: path, headers, body as
proxies log them) replayed through the gateway, raw over HTTP with their headers and through the
anthropic SDK's beta namespace (as Claude Code calls it). The gateway's `[[routes]] model =
"claude-*" to = "auto:code"` serves the Claude model names with the simulated free model.

The replays go to the gateway with client keys (`auth_gateway`): the fixture's key is swapped for
the gateway's, in the header the fixture uses (`x-api-key` or `authorization: Bearer`)."""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from freeway_e2e import (
    ANTHROPIC_VERSION,
    FULL_REPLY,
    GATEWAY_KEY,
    MODEL,
    ROOT,
    TOOL_ARGUMENTS,
    TOOL_TRIGGER,
    Gateway,
    Sim,
    check_anthropic_stream,
    httpx,
    make_anthropic,
    sim_prompt_tokens,
    sse_events,
)

FIXTURES = ROOT / "tests/e2e/fixtures/claude-code"
# headers a replay must not copy: the HTTP client sets them for its own body
HOP_HEADERS = {"content-length", "host", "accept-encoding", "connection", "transfer-encoding"}
# headers the SDK sets itself (or that the replay sets through its arguments)
SDK_HEADERS = HOP_HEADERS | {"x-api-key", "authorization", "content-type", "accept", "anthropic-version"}


def load(name: str) -> dict[str, Any]:
    fixture = json.loads((FIXTURES / name).read_text())
    assert set(fixture) >= {"path", "headers", "body"}, name
    return fixture


MAIN = "01-main-turn-stream.json"
TOOL_RESULTS = "02-tool-result-turn-stream.json"
HAIKU = "03-haiku-topic.json"
COUNT = "04-count-tokens.json"


def test_every_fixture_is_known() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == [MAIN, TOOL_RESULTS, HAIKU, COUNT]
    for name in (MAIN, TOOL_RESULTS, HAIKU, COUNT):
        headers = {k.lower() for k in load(name)["headers"]}
        assert {"anthropic-version", "anthropic-beta", "x-app", "user-agent"} <= headers, name
        assert headers & {"x-api-key", "authorization"}, name


def replay_headers(fixture: dict[str, Any]) -> dict[str, str]:
    headers = {k: v for k, v in fixture["headers"].items() if k.lower() not in HOP_HEADERS}
    if "x-api-key" in headers:
        headers["x-api-key"] = GATEWAY_KEY
    if "authorization" in headers:
        headers["authorization"] = f"Bearer {GATEWAY_KEY}"
    return headers


def post(gw: Gateway, fixture: dict[str, Any], body: dict[str, Any] | None = None) -> Any:
    return httpx.post(
        gw.url + fixture["path"],
        headers=replay_headers(fixture),
        content=json.dumps(body if body is not None else fixture["body"]).encode(),
        timeout=20.0,
    )


def post_stream(gw: Gateway, fixture: dict[str, Any], body: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    with httpx.stream(
        "POST",
        gw.url + fixture["path"],
        headers=replay_headers(fixture),
        content=json.dumps(body if body is not None else fixture["body"]).encode(),
        timeout=20.0,
    ) as response:
        if response.status_code != 200:
            response.read()
            return response, []
        return response, sse_events(response.iter_lines())


def with_trigger(body: dict[str, Any]) -> dict[str, Any]:
    """The same call, with the last user turn asking the simulator for a tool call."""
    body = copy.deepcopy(body)
    last = body["messages"][-1]
    last["content"].append({"type": "text", "text": f"Please {TOOL_TRIGGER}."})
    return body


@pytest.fixture
def sdk(auth_gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with make_anthropic(auth_gateway, api_key=GATEWAY_KEY) as client:
        yield client


def sdk_headers(fixture: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in fixture["headers"].items() if k.lower() not in SDK_HEADERS}


def sdk_kwargs(method: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The body as keyword arguments of an SDK method; fields it has no parameter for (this SDK
    dropped `temperature`) go in `extra_body`, as they are on the wire."""
    params = inspect.signature(method).parameters
    kwargs = {k: v for k, v in body.items() if k in params}
    extra = {k: v for k, v in body.items() if k not in params}
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


# --- 01: the main turn ------------------------------------------------------------------------


def test_main_turn_streams_anthropic_events(auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(MAIN)
    response, events = post_stream(auth_gateway, fixture)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    message = check_anthropic_stream(events)
    assert [b["type"] for b in message["content"] if b["type"] != "thinking"] == ["text"]
    assert message["content"][-1]["text"] == FULL_REPLY
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == 12
    deltas = [d for _, d in events if d["type"] == "content_block_delta" and d["delta"]["type"] == "text_delta"]
    assert len(deltas) == 12

    [upstream] = sim.chat_requests()
    body = upstream["body"]
    assert upstream["key"] != GATEWAY_KEY
    assert body["model"] == MODEL, "claude-* is routed to auto:code"
    assert body["stream"] is True
    assert message["usage"]["input_tokens"] == sim_prompt_tokens(body)
    # every tool, in order, with its schema's properties
    tools = fixture["body"]["tools"]
    assert [t["function"]["name"] for t in body["tools"]] == [t["name"] for t in tools]
    for sent, tool in zip(body["tools"], tools, strict=True):
        assert sent["type"] == "function"
        assert sent["function"]["description"] == tool["description"]
        assert sent["function"]["parameters"]["properties"] == tool["input_schema"]["properties"]
        assert sent["function"]["parameters"]["required"] == tool["input_schema"]["required"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"], roles
    system = text_of(body["messages"][0]["content"])
    assert system.startswith("You are Claude Code, Anthropic's official CLI for Claude.")
    assert "Working directory: /home/dev/freeway-demo" in system
    user = text_of(body["messages"][1]["content"])
    assert "<system-reminder>" in user
    assert user.endswith("Where is the config file parsed? Fix the typo in its error message.")
    assert "cache_control" not in json.dumps(body)
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 32000
    assert body.get("temperature") == 1


def test_main_turn_answers_a_tool_use_when_the_model_calls_a_tool(auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(MAIN)
    response, events = post_stream(auth_gateway, fixture, with_trigger(fixture["body"]))

    assert response.status_code == 200, response.text
    message = check_anthropic_stream(events)
    assert message["stop_reason"] == "tool_use"
    uses = [b for b in message["content"] if b["type"] == "tool_use"]
    assert len(uses) == 1, message["content"]
    # the simulator calls the first tool offered: Claude Code's Task
    assert uses[0]["name"] == "Task"
    assert uses[0]["input"] == TOOL_ARGUMENTS, "the streamed input_json_delta pieces join into valid JSON"
    assert uses[0]["id"]
    assert all(b["text"] for b in message["content"] if b["type"] == "text"), "no empty text block"
    starts = [d for _, d in events if d["type"] == "content_block_start" and d["content_block"]["type"] == "tool_use"]
    assert [s["content_block"]["name"] for s in starts] == ["Task"]


def test_main_turn_through_the_sdk_beta_stream(sdk: anthropic.Anthropic, sim: Sim) -> None:
    fixture = load(MAIN)
    body = {k: v for k, v in fixture["body"].items() if k != "stream"}
    betas = fixture["headers"]["anthropic-beta"].split(",")
    with sdk.beta.messages.stream(
        **sdk_kwargs(sdk.beta.messages.create, body), betas=betas, extra_headers=sdk_headers(fixture)
    ) as stream:
        kinds = [e.type for e in stream if e.type not in ("text", "ping", "thinking", "signature", "input_json")]
        final = stream.get_final_message()

    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"], kinds
    text_blocks = [b for b in final.content if b.type == "text"]
    assert [b.text for b in text_blocks] == [FULL_REPLY]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 12
    [upstream] = sim.chat_requests()
    assert upstream["body"]["model"] == MODEL
    assert upstream["path"].endswith("/chat/completions")


# --- 02: the tool_result turn -----------------------------------------------------------------


def test_tool_result_turn_reaches_the_upstream_as_tool_messages(auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(TOOL_RESULTS)
    response, events = post_stream(auth_gateway, fixture)

    assert response.status_code == 200, response.text
    message = check_anthropic_stream(events)
    assert message["stop_reason"] == "end_turn"
    assert [b["text"] for b in message["content"] if b["type"] == "text"] == [FULL_REPLY]

    [upstream] = sim.chat_requests()
    messages = upstream["body"]["messages"]
    roles = [m["role"] for m in messages]
    # system, the first user turn, the assistant's tool calls, one tool message per result (in
    # order), and the trailing reminder text as a user message after them
    assert roles[:6] == ["system", "user", "assistant", "tool", "tool", "tool"], roles
    assert roles[6:] in ([], ["user"]), roles
    assistant = messages[2]
    assert "I'll find where the config is parsed." in text_of(assistant.get("content"))
    uses = [b for b in fixture["body"]["messages"][1]["content"] if b["type"] == "tool_use"]
    calls = assistant["tool_calls"]
    assert [c["id"] for c in calls] == [u["id"] for u in uses]
    assert [c["function"]["name"] for c in calls] == ["Grep", "Read", "Bash"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [u["input"] for u in uses]
    assert "EqQBCkgIBxAB" not in json.dumps(upstream["body"]), "a thinking signature is Anthropic's own"
    grep, read, bash = messages[3:6]
    assert grep["tool_call_id"] == uses[0]["id"]
    assert text_of(grep["content"]) == "Found 1 file\n/home/dev/freeway-demo/src/config.rs"
    assert read["tool_call_id"] == uses[1]["id"]
    assert "cannot raed {path}" in text_of(read["content"])
    assert bash["tool_call_id"] == uses[2]["id"]
    assert "unresolved import `toml`" in text_of(bash["content"])
    if roles[6:] == ["user"]:
        assert "TodoWrite tool hasn't been used recently" in text_of(messages[6]["content"])


def test_tool_result_turn_through_the_sdk(sdk: anthropic.Anthropic, sim: Sim) -> None:
    fixture = load(TOOL_RESULTS)
    body = {k: v for k, v in fixture["body"].items() if k != "stream"}
    betas = fixture["headers"]["anthropic-beta"].split(",")
    with sdk.beta.messages.stream(
        **sdk_kwargs(sdk.beta.messages.create, body), betas=betas, extra_headers=sdk_headers(fixture)
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == FULL_REPLY
    assert final.stop_reason == "end_turn"
    assert len(sim.chat_requests()) == 1


# --- 03: the small model's side call ----------------------------------------------------------


def test_haiku_side_call_with_bearer_auth(auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(HAIKU)
    response = post(auth_gateway, fixture)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": FULL_REPLY}]
    assert message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None
    [upstream] = sim.chat_requests()
    assert message["usage"]["output_tokens"] == 12
    assert message["usage"]["input_tokens"] == sim_prompt_tokens(upstream["body"])
    assert upstream["body"]["model"] == MODEL
    assert upstream["body"].get("stream") in (None, False)
    assert upstream["body"]["temperature"] == 0
    assert upstream["body"].get("max_tokens", upstream["body"].get("max_completion_tokens")) == 512
    assert [m["role"] for m in upstream["body"]["messages"]] == ["system", "user"]


def test_haiku_side_call_through_the_sdk(auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(HAIKU)
    # ANTHROPIC_AUTH_TOKEN: the SDK sends `authorization: Bearer` instead of x-api-key
    with anthropic.Anthropic(
        base_url=auth_gateway.url, auth_token=GATEWAY_KEY, api_key=None, max_retries=0, timeout=15.0
    ) as client:
        message = client.beta.messages.create(
            **sdk_kwargs(client.beta.messages.create, fixture["body"]),
            betas=fixture["headers"]["anthropic-beta"].split(","),
            extra_headers=sdk_headers(fixture),
        )

    assert [(b.type, b.text) for b in message.content] == [("text", FULL_REPLY)]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 12
    assert len(sim.chat_requests()) == 1


def test_wrong_key_gets_an_anthropic_authentication_error(auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(HAIKU)
    headers = replay_headers(fixture)
    headers["authorization"] = "Bearer not-the-gateway-key"
    response = httpx.post(auth_gateway.url + fixture["path"], headers=headers, json=fixture["body"], timeout=15.0)

    assert response.status_code == 401, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert sim.chat_requests() == []


# --- 04: count_tokens -------------------------------------------------------------------------


def test_count_tokens_call(auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(COUNT)
    response = post(auth_gateway, fixture)

    assert response.status_code == 200, response.text
    counted = response.json()
    # three tool schemas and "foo": far more than the one token of "foo" alone
    assert isinstance(counted["input_tokens"], int) and counted["input_tokens"] >= 100, counted
    bare = post(auth_gateway, fixture, {"model": fixture["body"]["model"], "messages": fixture["body"]["messages"]})
    assert bare.status_code == 200, bare.text
    assert 1 <= bare.json()["input_tokens"] < counted["input_tokens"]
    assert sim.chat_requests() == []


def test_count_tokens_through_the_sdk(sdk: anthropic.Anthropic, auth_gateway: Gateway, sim: Sim) -> None:
    fixture = load(COUNT)
    counted = sdk.beta.messages.count_tokens(
        **sdk_kwargs(sdk.beta.messages.count_tokens, fixture["body"]), betas=fixture["headers"]["anthropic-beta"].split(","), extra_headers=sdk_headers(fixture)
    )

    assert counted.input_tokens == post(auth_gateway, fixture).json()["input_tokens"]
    assert sim.chat_requests() == []


def test_anthropic_version_header_is_accepted_without_betas(auth_gateway: Gateway) -> None:
    fixture = load(HAIKU)
    response = httpx.post(
        auth_gateway.url + "/v1/messages",
        headers={"x-api-key": GATEWAY_KEY, "anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"},
        json=fixture["body"],
        timeout=15.0,
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == FULL_REPLY
