"""LlamaIndex on the gateway: OpenAILike on the legacy completions API (is_chat_model=False) and on
chat (is_chat_model=True), OpenAIEmbedding through api_base. Runs in its own venv
(target/e2e-venv-llamaindex: llama-index-llms-openai pins openai<3); the fixtures are the suite's
(../conftest.py, ../freeway_e2e.py)."""

from __future__ import annotations

import math

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.openai_like import OpenAILike

from freeway_e2e import CLAUDE_MODEL, EMBED_MODEL, FULL_REPLY, MODEL, Gateway, Sim, sim_prompt_tokens


def llm(gw: Gateway, chat: bool, **kwargs: object) -> OpenAILike:
    options: dict[str, object] = {"model": MODEL, "context_window": 8192, "max_retries": 0, "timeout": 15.0, **kwargs}
    return OpenAILike(api_base=gw.base_url, api_key="anything", is_chat_model=chat, **options)


def text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def test_complete_uses_the_legacy_completions_api(gateway: Gateway, sim: Sim) -> None:
    response = llm(gateway, chat=False, max_tokens=5).complete("Complete this sentence")

    assert response.text == "tok0 tok1 tok2 tok3 tok4"
    # the OpenAI SDK's Completion object: it went to /v1/completions, not chat
    assert response.raw is not None
    assert response.raw.object == "text_completion"
    [upstream] = sim.chat_requests()
    body = upstream["body"]
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [("user", "Complete this sentence")]
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 5


def test_stream_complete(gateway: Gateway) -> None:
    pieces = [r.delta for r in llm(gateway, chat=False).stream_complete("Stream it")]

    assert "".join(p or "" for p in pieces) == FULL_REPLY
    assert len([p for p in pieces if p]) == 12


def test_chat(gateway: Gateway, sim: Sim) -> None:
    response = llm(gateway, chat=True, temperature=0.1).chat(
        [
            ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
            ChatMessage(role=MessageRole.USER, content="Hello from LlamaIndex"),
        ]
    )

    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == FULL_REPLY
    [upstream] = sim.chat_requests()
    body = upstream["body"]
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [
        ("system", "Be brief."),
        ("user", "Hello from LlamaIndex"),
    ]
    assert body["temperature"] == 0.1
    assert response.raw.object == "chat.completion"
    assert response.raw.usage.completion_tokens == 12
    assert response.raw.usage.prompt_tokens == sim_prompt_tokens(body)


def test_chat_with_a_claude_name(gateway: Gateway, sim: Sim) -> None:
    response = llm(gateway, chat=True, model=CLAUDE_MODEL).chat([ChatMessage(role="user", content="via route")])

    assert response.message.content == FULL_REPLY
    [upstream] = sim.chat_requests()
    assert upstream["body"]["model"] == MODEL


def test_stream_chat(gateway: Gateway) -> None:
    deltas = [r.delta for r in llm(gateway, chat=True).stream_chat([ChatMessage(role="user", content="stream")])]

    assert "".join(d or "" for d in deltas) == FULL_REPLY


def test_openai_embedding_through_api_base(embed_gateway: Gateway, sim: Sim) -> None:
    embed = OpenAIEmbedding(
        model_name=EMBED_MODEL,  # the gateway's model, used for both queries and texts
        api_base=embed_gateway.base_url,
        api_key="anything",
        max_retries=0,
        embed_batch_size=8,
    )
    texts = embed.get_text_embedding_batch(["one text", "another text"])
    query = embed.get_query_embedding("one text")

    assert len(texts) == 2 and len(texts[0]) == len(texts[1]) >= 8
    assert texts[0] != texts[1]
    assert len(query) == len(texts[0])
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(query, texts[0], strict=True))
    assert {r["body"]["model"] for r in sim.embedding_requests()} == {EMBED_MODEL}
