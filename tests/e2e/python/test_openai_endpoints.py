"""The OpenAI endpoints beside chat through the official SDK: /v1/embeddings, the legacy
/v1/completions and /v1/responses (each translated by the gateway into its chat pipeline, or for
embeddings sent to the provider's embeddings API)."""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from freeway_e2e import (
    EMBED_MODEL,
    FULL_REPLY,
    MODEL,
    TOOL_ARGUMENTS,
    TOOL_TRIGGER,
    Gateway,
    Sim,
    make_client,
    sim_prompt_tokens,
)

WEATHER_FUNCTION = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


# --- /v1/embeddings ---------------------------------------------------------------------------


@pytest.fixture
def embed_client(embed_gateway: Gateway) -> Iterator[openai.OpenAI]:
    with make_client(embed_gateway) as c:
        yield c


def _floats_of_base64(text: str) -> list[float]:
    raw = base64.b64decode(text)
    assert len(raw) % 4 == 0, "base64 embeddings are little-endian float32"
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _close(a: list[float], b: list[float]) -> bool:
    # float32 on the wire: equal to 1e-6 relative
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(a, b, strict=True))


def test_embeddings_float(embed_client: openai.OpenAI, sim: Sim) -> None:
    result = embed_client.embeddings.create(model=EMBED_MODEL, input="The quick brown fox", encoding_format="float")

    assert result.object == "list"
    assert result.model == EMBED_MODEL
    [item] = result.data
    assert item.object == "embedding"
    assert item.index == 0
    vector = item.embedding
    # the simulator's vectors: 8 values (its default dimensions) in [-1, 1]
    assert isinstance(vector, list) and len(vector) == 8
    assert all(isinstance(x, float) and -1.0 <= x <= 1.0 for x in vector)
    assert any(x != 0.0 for x in vector)
    # the simulator counts an embedding input's words as its tokens
    assert result.usage.prompt_tokens == 4
    assert result.usage.total_tokens == 4
    [upstream] = sim.embedding_requests()
    assert upstream["body"]["model"] == EMBED_MODEL
    assert upstream["body"]["input"] in ("The quick brown fox", ["The quick brown fox"])
    assert sim.chat_requests() == [], "an embedding request never goes to chat"

    again = embed_client.embeddings.create(model=EMBED_MODEL, input="The quick brown fox", encoding_format="float")
    assert again.data[0].embedding == vector, "the same input embeds to the same vector"


def test_embeddings_base64_decodes_to_the_float_vector(embed_client: openai.OpenAI) -> None:
    floats = embed_client.embeddings.create(model=EMBED_MODEL, input="encode me", encoding_format="float")
    encoded = embed_client.embeddings.create(model=EMBED_MODEL, input="encode me", encoding_format="base64")
    # without encoding_format the SDK asks for base64 itself and decodes it to floats
    default = embed_client.embeddings.create(model=EMBED_MODEL, input="encode me")

    text = encoded.data[0].embedding
    assert isinstance(text, str), f"base64 was asked for: {type(text)}"
    assert _close(_floats_of_base64(text), floats.data[0].embedding)
    assert _close(list(default.data[0].embedding), floats.data[0].embedding)


def test_embeddings_batch_keeps_order(embed_client: openai.OpenAI, sim: Sim) -> None:
    inputs = ["alpha", "beta", "gamma"]
    batch = embed_client.embeddings.create(model=EMBED_MODEL, input=inputs, encoding_format="float")

    assert [d.index for d in batch.data] == [0, 1, 2]
    vectors = [d.embedding for d in batch.data]
    assert len({len(v) for v in vectors}) == 1, "one dimension for every input"
    assert vectors[0] != vectors[1] != vectors[2] != vectors[0], "different inputs, different vectors"
    seen = [r["body"]["input"] for r in sim.embedding_requests()]
    assert sorted(x for i in seen for x in (i if isinstance(i, list) else [i])) == inputs
    single = embed_client.embeddings.create(model=EMBED_MODEL, input="beta", encoding_format="float")
    assert _close(single.data[0].embedding, vectors[1])
    assert batch.usage.prompt_tokens == 3


def test_embeddings_dimensions_are_passed_upstream(embed_client: openai.OpenAI, sim: Sim) -> None:
    result = embed_client.embeddings.create(model=EMBED_MODEL, input="short", dimensions=4, encoding_format="float")

    assert len(result.data[0].embedding) == 4
    assert sim.embedding_requests()[0]["body"]["dimensions"] == 4


def test_embeddings_with_a_chat_model_is_bad_request(embed_client: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        embed_client.embeddings.create(model=MODEL, input="x", encoding_format="float")
    assert info.value.status_code == 400
    assert info.value.param == "model"
    assert sim.embedding_requests() == []
    assert sim.chat_requests() == []


# --- /v1/completions (legacy) -----------------------------------------------------------------


def test_completions_prompt_becomes_a_chat_turn(client: openai.OpenAI, sim: Sim) -> None:
    completion = client.completions.create(model=MODEL, prompt="Say this is a test", max_tokens=7)

    assert completion.object == "text_completion"
    assert completion.id
    assert completion.model == MODEL
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.text == "tok0 tok1 tok2 tok3 tok4 tok5 tok6"
    assert choice.finish_reason == "length"
    [upstream] = sim.chat_requests()
    body = upstream["body"]
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [("user", "Say this is a test")]
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 7
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7
    assert completion.usage.prompt_tokens == sim_prompt_tokens(body)
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 7


def test_completions_stop_and_full_reply(client: openai.OpenAI, sim: Sim) -> None:
    completion = client.completions.create(model=MODEL, prompt="Once upon a time", stop=["\n"], temperature=0)

    assert completion.choices[0].text == FULL_REPLY
    assert completion.choices[0].finish_reason == "stop"
    [upstream] = sim.chat_requests()
    assert upstream["body"]["stop"] in (["\n"], "\n")
    assert upstream["body"]["temperature"] == 0


def test_completions_stream(client: openai.OpenAI, sim: Sim) -> None:
    chunks = list(client.completions.create(model=MODEL, prompt="Stream a story", stream=True))

    assert chunks
    assert all(c.object == "text_completion" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].text for c in chunks if c.choices) == FULL_REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    [upstream] = sim.chat_requests()
    assert upstream["body"]["stream"] is True


def test_completions_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model=MODEL, prompt="Count", max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )

    assert "".join(c.choices[0].text for c in chunks if c.choices) == "tok0 tok1 tok2 tok3"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 4


# --- /v1/responses ----------------------------------------------------------------------------


def test_responses_plain(client: openai.OpenAI, sim: Sim) -> None:
    response = client.responses.create(model=MODEL, input="Tell me a joke", instructions="You are funny.")

    assert response.object == "response"
    assert response.id
    assert response.status == "completed"
    assert response.output_text == FULL_REPLY
    [item] = response.output
    assert item.type == "message"
    assert item.role == "assistant"
    assert [(c.type, c.text) for c in item.content] == [("output_text", FULL_REPLY)]
    [upstream] = sim.chat_requests()
    body = upstream["body"]
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [
        ("system", "You are funny."),
        ("user", "Tell me a joke"),
    ]
    assert response.usage is not None
    assert response.usage.output_tokens == 12
    assert response.usage.input_tokens == sim_prompt_tokens(body)
    assert response.usage.total_tokens == response.usage.input_tokens + 12


def test_responses_input_items_and_max_output_tokens(client: openai.OpenAI, sim: Sim) -> None:
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": [{"type": "input_text", "text": "Second question"}]},
        ],
        max_output_tokens=5,
    )

    assert response.output_text == "tok0 tok1 tok2 tok3 tok4"
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    [upstream] = sim.chat_requests()
    body = upstream["body"]
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [
        ("user", "First question"),
        ("assistant", "First answer"),
        ("user", "Second question"),
    ]
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 5


def test_responses_stream_event_sequence(client: openai.OpenAI, sim: Sim) -> None:
    events = list(client.responses.create(model=MODEL, input="Stream please", stream=True))

    kinds = [e.type for e in events]
    assert kinds[0] == "response.created", kinds
    assert kinds[-1] == "response.completed", kinds
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == FULL_REPLY
    assert len(deltas) == 12
    core = [k for k in kinds if k not in ("response.in_progress",)]
    assert core == [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 12,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ], kinds
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == FULL_REPLY
    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.output_text == FULL_REPLY
    assert completed.usage is not None and completed.usage.output_tokens == 12
    assert events[0].response.id == completed.id
    [upstream] = sim.chat_requests()
    assert upstream["body"]["stream"] is True


def test_responses_function_call_and_output_with_previous_response_id(client: openai.OpenAI, sim: Sim) -> None:
    first = client.responses.create(
        model=MODEL, input=f"Please {TOOL_TRIGGER}: weather in Lima?", tools=[WEATHER_FUNCTION]
    )

    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1, first.output
    [call] = calls
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == TOOL_ARGUMENTS
    assert call.call_id
    [upstream] = sim.chat_requests()
    [tool] = upstream["body"]["tools"]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["description"] == "Current weather of a city."
    assert tool["function"]["parameters"] == WEATHER_FUNCTION["parameters"]

    sim.reply_once("Lima is cloudy today.")
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "cloudy"}'}],
        tools=[WEATHER_FUNCTION],
    )

    assert second.output_text == "Lima is cloudy today."
    assert second.id != first.id
    assert second.previous_response_id == first.id
    messages = sim.chat_requests()[1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"], messages
    assert text_of(messages[0]["content"]) == f"Please {TOOL_TRIGGER}: weather in Lima?"
    [upstream_call] = messages[1]["tool_calls"]
    assert upstream_call["id"] == call.call_id
    assert upstream_call["function"]["name"] == "get_weather"
    assert json.loads(upstream_call["function"]["arguments"]) == TOOL_ARGUMENTS
    assert messages[2]["tool_call_id"] == call.call_id
    assert text_of(messages[2]["content"]) == '{"sky": "cloudy"}'


def test_responses_streamed_function_call(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model=MODEL, input=f"{TOOL_TRIGGER} now", tools=[WEATHER_FUNCTION], stream=True)
    )

    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == TOOL_ARGUMENTS
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == TOOL_ARGUMENTS
    [call] = [o for o in events[-1].response.output if o.type == "function_call"]
    assert call.name == "get_weather"


def test_responses_unknown_previous_response_id_is_an_error(client: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as info:
        client.responses.create(model=MODEL, input="continue", previous_response_id="resp_does_not_exist")
    assert "resp_does_not_exist" in info.value.message
    assert sim.chat_requests() == []


def test_responses_unsupported_tool_is_a_clear_bad_request(client: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="search the web", tools=[{"type": "web_search"}])
    assert info.value.status_code == 400
    assert "web_search" in info.value.message
    assert sim.chat_requests() == []
