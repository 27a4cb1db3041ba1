"""LangChain's OpenAI integration (langchain-openai) on the gateway: ChatOpenAI invoke, stream,
bind_tools tool calling, the Responses API, and OpenAIEmbeddings."""

from __future__ import annotations

import math

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from freeway_e2e import (
    CLAUDE_MODEL,
    EMBED_MODEL,
    FULL_REPLY,
    MODEL,
    TOOL_ARGUMENTS,
    TOOL_TRIGGER,
    Gateway,
    Sim,
    sim_prompt_tokens,
)


def chat(gw: Gateway, **kwargs: object) -> ChatOpenAI:
    options: dict[str, object] = {"model": MODEL, "max_retries": 0, "timeout": 15.0, **kwargs}
    return ChatOpenAI(base_url=gw.base_url, api_key="anything", **options)  # type: ignore[arg-type]


@tool
def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"sunny in {city}"


def test_invoke(gateway: Gateway, sim: Sim) -> None:
    reply = chat(gateway, temperature=0.3).invoke(
        [SystemMessage("You are helpful."), HumanMessage("Hello from LangChain")]
    )

    assert isinstance(reply, AIMessage)
    assert reply.content == FULL_REPLY
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == MODEL
    [upstream] = sim.chat_requests()
    body = upstream["body"]
    assert body["messages"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello from LangChain"},
    ]
    assert body["temperature"] == 0.3
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == 12
    assert reply.usage_metadata["input_tokens"] == sim_prompt_tokens(body)
    assert reply.usage_metadata["total_tokens"] == reply.usage_metadata["input_tokens"] + 12


def test_invoke_a_claude_name_through_its_route(gateway: Gateway, sim: Sim) -> None:
    reply = chat(gateway, model=CLAUDE_MODEL).invoke("Routed by name")

    assert reply.content == FULL_REPLY
    [upstream] = sim.chat_requests()
    assert upstream["body"]["model"] == MODEL


def test_stream(gateway: Gateway, sim: Sim) -> None:
    chunks = list(chat(gateway, stream_usage=True).stream("Stream from LangChain"))

    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == FULL_REPLY
    assert len([c for c in chunks if c.content]) == 12
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.content == FULL_REPLY
    assert merged.usage_metadata is not None and merged.usage_metadata["output_tokens"] == 12
    assert merged.response_metadata.get("finish_reason") == "stop"
    [upstream] = sim.chat_requests()
    assert upstream["body"]["stream"] is True


def test_bind_tools_round_trip(gateway: Gateway, sim: Sim) -> None:
    model = chat(gateway).bind_tools([get_weather])
    question = HumanMessage(f"Please {TOOL_TRIGGER}: weather in Rome?")
    first = model.invoke([question])

    assert isinstance(first, AIMessage)
    assert len(first.tool_calls) == 1, first
    [call] = first.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == TOOL_ARGUMENTS
    assert call["id"]
    assert first.response_metadata["finish_reason"] == "tool_calls"
    [upstream] = sim.chat_requests()
    [schema] = upstream["body"]["tools"]
    assert schema["function"]["name"] == "get_weather"
    assert schema["function"]["description"] == "Current weather of a city."
    assert schema["function"]["parameters"]["properties"] == {"city": {"type": "string"}}

    sim.reply_once("Rome is sunny.")
    final = model.invoke([question, first, ToolMessage("sunny in Rome", tool_call_id=call["id"])])

    assert final.content == "Rome is sunny."
    assert final.tool_calls == []
    messages = sim.chat_requests()[1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call["id"]
    assert messages[2] == {"role": "tool", "content": "sunny in Rome", "tool_call_id": call["id"]}


def test_streamed_tool_call(gateway: Gateway) -> None:
    chunks = list(chat(gateway).bind_tools([get_weather]).stream(f"{TOOL_TRIGGER}, Oslo"))

    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("get_weather", TOOL_ARGUMENTS)]


def test_responses_api(gateway: Gateway, sim: Sim) -> None:
    reply = chat(gateway, use_responses_api=True).invoke("Through /v1/responses")

    assert reply.text == FULL_REPLY
    [upstream] = sim.chat_requests()
    assert upstream["body"]["messages"][-1]["role"] == "user"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 12


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(a, b, strict=True))


def test_openai_embeddings(embed_gateway: Gateway, sim: Sim) -> None:
    embeddings = OpenAIEmbeddings(
        model=EMBED_MODEL,
        base_url=embed_gateway.base_url,
        api_key="anything",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # no tiktoken look-up for a model OpenAI does not know
        max_retries=0,
    )
    documents = embeddings.embed_documents(["first document", "second document", "third document"])
    query = embeddings.embed_query("second document")

    assert len(documents) == 3
    assert len({len(v) for v in documents}) == 1 and len(documents[0]) >= 8
    assert documents[0] != documents[1]
    assert _close(query, documents[1]), "the same text embeds to the same vector"
    inputs = [r["body"]["input"] for r in sim.embedding_requests()]
    flat = [x for i in inputs for x in (i if isinstance(i, list) else [i])]
    assert flat == ["first document", "second document", "third document", "second document"]
    assert all(r["body"]["model"] == EMBED_MODEL for r in sim.embedding_requests())
