"""The exact response cache ([cache] enabled = true) seen from the official SDKs: an identical
deterministic request is answered from the cache (x-freeway-cache: hit) without a provider call,
for chat completions, streams and Anthropic Messages. Each test uses prompts of its own: the
session's cache gateway keeps its entries across tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anthropic
import openai
import pytest

from freeway_e2e import CLAUDE_MODEL, FULL_REPLY, MODEL, Gateway, Sim, make_anthropic, make_client


@pytest.fixture(scope="session")
def cache_gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(sim, tmp_path_factory.mktemp("cache-gateway"), name="freeway-cache", cache=True)
    yield gw
    gw.stop()


@pytest.fixture
def cached(cache_gateway: Gateway) -> Iterator[openai.OpenAI]:
    with make_client(cache_gateway) as c:
        yield c


def unique(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex}]"}]


def test_identical_deterministic_chat_is_a_hit(cached: openai.OpenAI, sim: Sim) -> None:
    messages = unique("cache me")
    first = cached.chat.completions.with_raw_response.create(model=MODEL, messages=messages, temperature=0)
    second = cached.chat.completions.with_raw_response.create(model=MODEL, messages=messages, temperature=0)

    assert first.headers["x-freeway-cache"] == "miss"
    assert second.headers["x-freeway-cache"] == "hit"
    assert first.parse().choices[0].message.content == FULL_REPLY
    assert second.parse().choices[0].message.content == FULL_REPLY
    assert len(sim.chat_requests()) == 1, "the hit made no provider call"


def test_a_sampled_request_bypasses_the_cache(cached: openai.OpenAI, sim: Sim) -> None:
    messages = unique("sampled")
    first = cached.chat.completions.with_raw_response.create(model=MODEL, messages=messages, temperature=1)
    second = cached.chat.completions.with_raw_response.create(model=MODEL, messages=messages, temperature=1)

    assert first.headers["x-freeway-cache"] == "bypass"
    assert second.headers["x-freeway-cache"] == "bypass"
    assert len(sim.chat_requests()) == 2


def test_a_stream_is_replayed_from_the_cache(cached: openai.OpenAI, sim: Sim) -> None:
    messages = unique("stream me")
    first = list(cached.chat.completions.create(model=MODEL, messages=messages, temperature=0, stream=True))
    second = list(cached.chat.completions.create(model=MODEL, messages=messages, temperature=0, stream=True))

    def text(chunks: list[openai.types.chat.ChatCompletionChunk]) -> str:
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert text(first) == text(second) == FULL_REPLY
    assert len(sim.chat_requests()) == 1


def test_anthropic_messages_are_cached(cache_gateway: Gateway, sim: Sim) -> None:
    messages = unique("claude, cache me")
    with make_anthropic(cache_gateway) as client:
        first = client.messages.with_raw_response.create(
            model=CLAUDE_MODEL, max_tokens=64, messages=messages, extra_body={"temperature": 0}
        )
        second = client.messages.with_raw_response.create(
            model=CLAUDE_MODEL, max_tokens=64, messages=messages, extra_body={"temperature": 0}
        )

    assert first.headers["x-freeway-cache"] == "miss"
    assert second.headers["x-freeway-cache"] == "hit"
    a: anthropic.types.Message = first.parse()
    b: anthropic.types.Message = second.parse()
    assert a.content[0].text == b.content[0].text == FULL_REPLY
    assert b.stop_reason == "end_turn"
    assert len(sim.chat_requests()) == 1
