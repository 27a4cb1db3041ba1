"""POST /v1/messages and /v1/messages/count_tokens through the official anthropic SDK.

Claude model names reach the simulated free model through `[[routes]] model = "claude-*"
to = "auto:code"` (freeway_e2e.Gateway); the simulator answers `tok0 ... tok11`, or a tool call to
the first tool when the last user turn says "call a tool".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from freeway_e2e import (
    ANTHROPIC_VERSION,
    CLAUDE_MODEL,
    FULL_REPLY,
    GATEWAY_KEY,
    MODEL,
    TOOL_ARGUMENTS,
    TOOL_TRIGGER,
    Gateway,
    Sim,
    httpx,
    make_anthropic,
    parse_route,
    sim_prompt_tokens,
    sse_events,
)

CHAT = "/chat/completions"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
}
CLOCK_TOOL = {
    "name": "get_time",
    "description": "Current time in a timezone.",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
# a 1x1 transparent PNG
PNG_1X1 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4000000004945"
        "4e44ae426082"
    )
).decode()


@pytest.fixture
def claude(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with make_anthropic(gateway) as c:
        yield c


@pytest.fixture
def fresh_claude(fresh_gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with make_anthropic(fresh_gateway) as c:
        yield c


def text_of(content: Any) -> str:
    """The text of an OpenAI message content: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def upstream_max_tokens(body: dict[str, Any]) -> Any:
    return body.get("max_completion_tokens", body.get("max_tokens"))


def _error(err: anthropic.APIStatusError) -> dict[str, Any]:
    """The Anthropic error envelope: {"type": "error", "error": {"type", "message"}}."""
    body = err.response.json()
    assert body.get("type") == "error", body
    inner = body["error"]
    assert isinstance(inner.get("type"), str) and isinstance(inner.get("message"), str) and inner["message"], body
    return inner


def test_messages_create_answers_an_anthropic_message(claude: anthropic.Anthropic, sim: Sim) -> None:
    raw = claude.messages.with_raw_response.create(
        model=CLAUDE_MODEL, max_tokens=1024, messages=[{"role": "user", "content": "Hello there, gateway"}]
    )
    message = raw.parse()

    assert raw.status_code == 200
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_"), message.id
    assert message.model == MODEL, "the answer names the model that served it"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == FULL_REPLY
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    [upstream] = sim.chat_requests()
    assert message.usage.output_tokens == 12
    assert message.usage.input_tokens == sim_prompt_tokens(upstream["body"])

    # claude-* went to auto:code, which picked the simulated free model
    assert upstream["body"]["model"] == MODEL
    assert [(m["role"], text_of(m["content"])) for m in upstream["body"]["messages"]] == [
        ("user", "Hello there, gateway")
    ]
    assert upstream_max_tokens(upstream["body"]) == 1024
    assert parse_route(raw.headers["x-freeway-route"])["model"] == MODEL


def test_system_blocks_and_multi_turn_reach_the_upstream_in_order(claude: anthropic.Anthropic, sim: Sim) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=256,
        system=[
            {"type": "text", "text": "You are a terse assistant."},
            {"type": "text", "text": "Answer in English.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=[
            {"role": "user", "content": "What is two plus two?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Four."}]},
            {"role": "user", "content": [{"type": "text", "text": "And times three?"}]},
        ],
        # this SDK's create() has no `temperature` parameter any more; the API still takes it
        extra_body={"temperature": 0.2},
    )

    assert message.content[0].text == FULL_REPLY
    assert message.stop_reason == "end_turn"
    [upstream] = sim.chat_requests()
    body = upstream["body"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user"], roles
    system = text_of(body["messages"][0]["content"])
    assert "You are a terse assistant." in system and "Answer in English." in system
    assert system.index("You are a terse") < system.index("Answer in English")
    assert [text_of(m["content"]) for m in body["messages"][1:]] == [
        "What is two plus two?",
        "Four.",
        "And times three?",
    ]
    assert body["temperature"] == 0.2
    assert "cache_control" not in json.dumps(body), "cache_control is Anthropic's; it must not go upstream"
    assert message.usage.input_tokens == sim_prompt_tokens(body)


def test_stream_events_and_final_message(claude: anthropic.Anthropic, sim: Sim) -> None:
    kinds: list[str] = []
    texts: list[str] = []
    with claude.messages.stream(
        model=CLAUDE_MODEL, max_tokens=1024, messages=[{"role": "user", "content": "Stream to me"}]
    ) as stream:
        for event in stream:
            if event.type == "text":  # the SDK's own event beside each text delta
                texts.append(event.text)
            elif event.type != "ping":
                kinds.append(event.type)
        final = stream.get_final_message()

    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 12,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ], kinds
    assert "".join(texts) == FULL_REPLY
    assert texts[0] == "tok0" and texts[1] == " tok1"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == FULL_REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 12
    [upstream] = sim.chat_requests()
    assert upstream["body"]["stream"] is True
    assert final.usage.input_tokens == sim_prompt_tokens(upstream["body"])


def test_stream_cut_by_max_tokens_says_max_tokens(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=CLAUDE_MODEL, max_tokens=3, messages=[{"role": "user", "content": "Stream a little"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "tok0 tok1 tok2"
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 3


def test_max_tokens_and_stop_sequences_are_forwarded(claude: anthropic.Anthropic, sim: Sim) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=3,
        stop_sequences=["END", "\n\nHuman:"],
        messages=[{"role": "user", "content": "Count"}],
    )

    assert message.content[0].text == "tok0 tok1 tok2"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    [upstream] = sim.chat_requests()
    assert upstream_max_tokens(upstream["body"]) == 3
    assert upstream["body"]["stop"] == ["END", "\n\nHuman:"]


def test_image_block_becomes_a_data_url(claude: anthropic.Anthropic, sim: Sim) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
                    {"type": "text", "text": "What is in this picture?"},
                ],
            }
        ],
    )

    assert message.content[0].text == FULL_REPLY
    [upstream] = sim.chat_requests()
    [user] = upstream["body"]["messages"]
    parts = user["content"]
    assert isinstance(parts, list), parts
    images = [p for p in parts if p.get("type") == "image_url"]
    assert [p["image_url"]["url"] for p in images] == [f"data:image/png;base64,{PNG_1X1}"]
    assert text_of(parts) == "What is in this picture?"


def test_tool_use_round_trip(claude: anthropic.Anthropic, sim: Sim) -> None:
    question = {"role": "user", "content": f"Please {TOOL_TRIGGER}: what is the weather in Paris?"}
    first = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=512, tools=[WEATHER_TOOL, CLOCK_TOOL], messages=[question]
    )

    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert len(uses) == 1, first.content
    [use] = uses
    assert use.name == "get_weather"
    assert use.input == TOOL_ARGUMENTS
    assert use.id
    assert all(b.text for b in first.content if b.type == "text"), "no empty text block (clients send it back)"
    [upstream] = sim.chat_requests()
    tools = upstream["body"]["tools"]
    assert [t["type"] for t in tools] == ["function", "function"]
    assert tools[0]["function"]["name"] == "get_weather"
    assert tools[0]["function"]["description"] == "Current weather of a city."
    assert tools[0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]
    assert tools[1]["function"]["name"] == "get_time"

    sim.reply_once("It is 18 degrees and sunny in Paris.")
    final = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=512,
        tools=[WEATHER_TOOL, CLOCK_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees, sunny"}],
            },
        ],
    )

    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == "It is 18 degrees and sunny in Paris."
    assert final.usage.output_tokens == 8
    second = sim.chat_requests()[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"], second
    [call] = second[1]["tool_calls"]
    assert call["id"] == use.id
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == TOOL_ARGUMENTS
    assert second[2]["tool_call_id"] == use.id
    assert text_of(second[2]["content"]) == "18 degrees, sunny"


def test_streamed_tool_use_has_valid_json_input(claude: anthropic.Anthropic, sim: Sim) -> None:
    with claude.messages.stream(
        model=CLAUDE_MODEL,
        max_tokens=512,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": f"{TOOL_TRIGGER} for Oslo"}],
    ) as stream:
        kinds = [e.type for e in stream if e.type in ("content_block_start", "content_block_stop", "message_delta")]
        final = stream.get_final_message()

    assert final.stop_reason == "tool_use"
    [use] = [b for b in final.content if b.type == "tool_use"]
    assert use.name == "get_weather"
    assert use.input == TOOL_ARGUMENTS
    assert kinds[-1] == "message_delta"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == len(final.content)


@pytest.mark.parametrize(
    ("choice", "upstream"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "get_time"}, {"type": "function", "function": {"name": "get_time"}}),
        ({"type": "none"}, "none"),
    ],
)
def test_tool_choice_is_translated(claude: anthropic.Anthropic, sim: Sim, choice: Any, upstream: Any) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=64,
        tools=[WEATHER_TOOL, CLOCK_TOOL],
        tool_choice=choice,
        messages=[{"role": "user", "content": "What now?"}],
    )

    assert message.content[0].text == FULL_REPLY
    [request] = sim.chat_requests()
    assert request["body"]["tool_choice"] == upstream


def test_count_tokens_answers_locally(claude: anthropic.Anthropic, sim: Sim) -> None:
    short = claude.messages.count_tokens(model=CLAUDE_MODEL, messages=[{"role": "user", "content": "Hi"}])
    long_text = "Explain the borrow checker in detail. " * 50
    longer = claude.messages.count_tokens(model=CLAUDE_MODEL, messages=[{"role": "user", "content": long_text}])
    with_tools = claude.messages.count_tokens(
        model=CLAUDE_MODEL,
        system="You are Claude Code.",
        tools=[WEATHER_TOOL, CLOCK_TOOL],
        messages=[{"role": "user", "content": long_text}],
    )

    assert isinstance(short.input_tokens, int) and short.input_tokens >= 1
    # about four characters a token: 1900 characters are hundreds of tokens
    assert 200 <= longer.input_tokens <= 1900, longer.input_tokens
    assert longer.input_tokens > short.input_tokens
    assert with_tools.input_tokens > longer.input_tokens, "system and tools count too"
    assert sim.chat_requests() == [], "counting tokens must not call a model"


def test_x_api_key_and_anthropic_version_are_accepted(auth_gateway: Gateway, sim: Sim) -> None:
    with make_anthropic(auth_gateway, api_key=GATEWAY_KEY) as client:
        message = client.messages.create(
            model=CLAUDE_MODEL, max_tokens=64, messages=[{"role": "user", "content": "Authenticated hello"}]
        )
    assert message.content[0].text == FULL_REPLY

    # what the SDK sent: x-api-key, not Authorization, and anthropic-version
    response = httpx.post(
        auth_gateway.url + "/v1/messages",
        headers={"x-api-key": GATEWAY_KEY, "anthropic-version": ANTHROPIC_VERSION},
        json={"model": CLAUDE_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "raw"}]},
        timeout=15.0,
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"] == [{"type": "text", "text": FULL_REPLY}]
    assert sim.chat_requests()[0]["key"] != GATEWAY_KEY, "the client's key must not go upstream"


def test_wrong_key_is_authentication_error(auth_gateway: Gateway, sim: Sim) -> None:
    with make_anthropic(auth_gateway, api_key="wrong-key") as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            client.messages.create(model=CLAUDE_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])

    assert info.value.status_code == 401
    assert _error(info.value)["type"] == "authentication_error"
    assert sim.chat_requests() == []


def test_missing_max_tokens_is_bad_request(claude: anthropic.Anthropic, sim: Sim) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model=CLAUDE_MODEL,
            max_tokens=anthropic.omit,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "hi"}],
            timeout=15.0,  # the SDK derives a timeout from max_tokens otherwise
        )

    assert info.value.status_code == 400
    error = _error(info.value)
    assert error["type"] == "invalid_request_error"
    assert "max_tokens" in error["message"]
    assert sim.chat_requests() == []


def test_unknown_model_is_not_found(claude: anthropic.Anthropic, sim: Sim) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.create(model="no-such-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}])

    assert info.value.status_code == 404
    error = _error(info.value)
    assert error["type"] == "not_found_error"
    assert "no-such-model" in error["message"]
    assert sim.chat_requests() == []


def test_rate_limited_upstream_is_rate_limit_error(fresh_claude: anthropic.Anthropic, sim: Sim) -> None:
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "rate_limit", "retry_after_s": 7}})
    with pytest.raises(anthropic.RateLimitError) as info:
        fresh_claude.messages.create(model=CLAUDE_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])

    err = info.value
    assert err.status_code == 429
    assert _error(err)["type"] == "rate_limit_error"
    retry_after = err.response.headers.get("retry-after")
    assert retry_after is not None, dict(err.response.headers)
    assert 1 <= int(retry_after) <= 60
    assert len(sim.chat_requests()) >= 1


def test_overloaded_upstream_is_overloaded_error(fresh_claude: anthropic.Anthropic, sim: Sim) -> None:
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "status", "status": 503}})
    with pytest.raises(anthropic.APIStatusError) as info:
        fresh_claude.messages.create(model=CLAUDE_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])

    err = info.value
    assert err.status_code == 529, err.response.text
    assert isinstance(err, anthropic.OverloadedError)
    assert _error(err)["type"] == "overloaded_error"


def test_upstream_reasoning_becomes_a_thinking_block(claude: anthropic.Anthropic, sim: Sim) -> None:
    sim.reply_once("The answer is four.", reasoning="Two plus two makes four.")
    message = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "What is two plus two?"}],
    )

    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Two plus two makes four."
    assert message.content[1].text == "The answer is four."
    assert message.stop_reason == "end_turn"


def test_streamed_reasoning_is_a_thinking_block_before_the_text(claude: anthropic.Anthropic, sim: Sim) -> None:
    sim.reply_once("The answer is four.", reasoning="Two plus two makes four.")
    thinking: list[str] = []
    with claude.messages.stream(
        model=CLAUDE_MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "What is two plus two?"}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                thinking.append(event.delta.thinking)
        final = stream.get_final_message()

    # the simulator sends the reasoning as one chunk: one thinking_delta
    assert thinking == ["Two plus two makes four."]
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Two plus two makes four."
    assert final.content[1].text == "The answer is four."
    # a thinking block sent back in the next turn is accepted (and not sent upstream)
    sim.reset()
    follow = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "What is two plus two?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
            {"role": "user", "content": "And three plus three?"},
        ],
    )
    assert follow.content[-1].text == FULL_REPLY
    [upstream] = sim.chat_requests()
    assert [text_of(m["content"]) for m in upstream["body"]["messages"]] == [
        "What is two plus two?",
        "The answer is four.",
        "And three plus three?",
    ]


def test_stream_cut_upstream_ends_with_an_error_event(fresh_gateway: Gateway, sim: Sim) -> None:
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "drop_after", "chunks": 3}})
    with httpx.stream(
        "POST",
        fresh_gateway.url + "/v1/messages",
        headers={"x-api-key": "anything", "anthropic-version": ANTHROPIC_VERSION},
        json={"model": CLAUDE_MODEL, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=15.0,
    ) as response:
        assert response.status_code == 200
        events = sse_events(response.iter_lines())

    kinds = [d["type"] for _, d in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "error", kinds
    assert "message_stop" not in kinds, "a failed stream does not claim to have finished"
    name, error = events[-1]
    assert name == "error"
    assert error["error"]["type"] in ("api_error", "overloaded_error") and error["error"]["message"], error
    text = "".join(d["delta"]["text"] for _, d in events if d["type"] == "content_block_delta")
    assert text and FULL_REPLY.startswith(text) and text != FULL_REPLY, text

    # the SDK raises on the error event
    sim.reset()
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "drop_after", "chunks": 3}})
    with make_anthropic(fresh_gateway) as client:
        with pytest.raises(anthropic.APIError):
            with client.messages.stream(
                model=CLAUDE_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                for _ in stream:
                    pass
