"""SSE streaming through the official SDK."""

from __future__ import annotations

import asyncio

import openai
from openai.types.chat import ChatCompletionChunk

from freeway_e2e import FULL_REPLY, MODEL, Gateway, Sim, make_async_client, user


def _content(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_stream_joins_to_full_reply(client: openai.OpenAI, sim: Sim) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=user(), stream=True)
    chunks = list(stream)  # ends cleanly: no exception, the iterator stops after [DONE]

    assert chunks, "no chunks"
    assert _content(chunks) == FULL_REPLY
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "all chunks of one completion share an id"
    assert all(c.choices for c in chunks), "without include_usage no chunk may have empty choices"
    assert all(c.usage is None for c in chunks), "without include_usage no chunk carries usage"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    # Unknown chunk fields are returned unchanged.
    assert all((c.model_extra or {}).get("x_sim") for c in chunks)

    [upstream] = sim.chat_requests()
    assert upstream["body"]["stream"] is True
    # The gateway always asks upstream for usage (and strips the usage chunk for this client).
    assert upstream["body"].get("stream_options", {}).get("include_usage") is True


def test_stream_include_usage(client: openai.OpenAI, sim: Sim) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=user(), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert _content(chunks) == FULL_REPLY
    last = chunks[-1]
    assert last.choices == [], "the usage chunk has empty choices"
    assert last.usage is not None
    assert last.usage.completion_tokens == 12
    assert last.usage.prompt_tokens >= 1
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert [c for c in chunks if not c.choices] == [last], "exactly one usage-only chunk, at the end"
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_with_max_tokens_and_provider_prefix(client: openai.OpenAI, sim: Sim) -> None:
    stream = client.chat.completions.create(model="local/local-model", messages=user(), stream=True, max_tokens=4)
    chunks = list(stream)

    assert _content(chunks) == "tok0 tok1 tok2 tok3"
    assert chunks[-1].choices[0].finish_reason == "length"
    [upstream] = sim.chat_requests()
    assert upstream["body"]["model"] == MODEL


def test_stream_raw_response_header(client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=user(), stream=True) as raw:
        assert raw.status_code == 200
        assert raw.headers.get("content-type", "").startswith("text/event-stream")
        route = raw.headers.get("x-freeway-route", "")
        assert "provider=local" in route and f"model={MODEL}" in route, route
        chunks = list(raw.parse())
    assert _content(chunks) == FULL_REPLY


def test_async_stream(gateway: Gateway, sim: Sim) -> None:
    async def run() -> list[ChatCompletionChunk]:
        async with make_async_client(gateway) as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=user(), stream=True, stream_options={"include_usage": True}
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    assert _content(chunks) == FULL_REPLY
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert len(sim.chat_requests()) == 1
