"""Non-streaming chat completions, models and headers through the official SDK."""

from __future__ import annotations

import asyncio

import openai

from freeway_e2e import FULL_REPLY, MODEL, UPSTREAM_KEY, Gateway, Sim, make_async_client, parse_route, user


def test_chat_completion(client: openai.OpenAI, sim: Sim) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=user("Hello there, gateway"))

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == FULL_REPLY
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 12
    assert completion.usage.prompt_tokens >= 1
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens

    [upstream] = sim.chat_requests()
    assert upstream["key"] == UPSTREAM_KEY, "the gateway must use the provider's key, not the client's"
    assert upstream["body"]["model"] == MODEL
    assert upstream["body"]["messages"] == user("Hello there, gateway")


def test_max_tokens_is_forwarded(client: openai.OpenAI, sim: Sim) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=user(), max_tokens=3)

    assert completion.choices[0].message.content == "tok0 tok1 tok2"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    [upstream] = sim.chat_requests()
    assert upstream["body"]["max_tokens"] == 3


def test_unknown_fields_pass_through_both_ways(client: openai.OpenAI, sim: Sim) -> None:
    extra = {"x_vendor_flag": {"nested": [1, 2, 3], "on": True}, "top_k": 7}
    completion = client.chat.completions.create(model=MODEL, messages=user(), extra_body=extra)

    [upstream] = sim.chat_requests()
    assert upstream["body"]["x_vendor_flag"] == extra["x_vendor_flag"]
    assert upstream["body"]["top_k"] == 7

    # The simulator adds `x_sim` to every response; the gateway must return it unchanged.
    assert completion.model_extra is not None
    assert completion.model_extra.get("x_sim") == {"request": upstream["seq"]}
    assert completion.to_dict()["x_sim"] == {"request": upstream["seq"]}
    assert completion.id == f"chatcmpl-sim-{upstream['seq']}"


def test_provider_qualified_model(client: openai.OpenAI, sim: Sim) -> None:
    completion = client.chat.completions.create(model="local/local-model", messages=user())

    assert completion.choices[0].message.content == FULL_REPLY
    [upstream] = sim.chat_requests()
    assert upstream["body"]["model"] == MODEL, "the provider prefix must be stripped before going upstream"


def test_raw_response_has_route_header(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=user())

    assert raw.status_code == 200
    route = raw.headers.get("x-freeway-route")
    assert route, f"missing x-freeway-route; headers: {dict(raw.headers)}"
    fields = parse_route(route)
    assert fields["provider"] == "local"
    assert fields["model"] == MODEL
    assert fields["account"] == "local#1"
    assert fields["attempts"] == "1"
    completion = raw.parse()
    assert completion.choices[0].message.content == FULL_REPLY


def test_auto_is_routed_by_the_smart_policy(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=user("Write a Python function that reverses a string.")
    )

    assert raw.status_code == 200
    fields = parse_route(raw.headers["x-freeway-route"])
    assert fields["model"] == MODEL
    assert fields["policy"] == "smart"
    assert raw.parse().choices[0].message.content == FULL_REPLY


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()

    ids = [m.id for m in models.data]
    assert MODEL in ids
    model = next(m for m in models.data if m.id == MODEL)
    assert model.object == "model"
    assert model.owned_by
    extra = model.model_extra or {}
    assert "local" in extra.get("providers", []), extra
    assert "capabilities" in extra, extra
    # Iterating the page works too (SyncPage).
    assert MODEL in [m.id for m in models]


def test_async_chat_completion(gateway: Gateway, sim: Sim) -> None:
    async def run() -> openai.types.chat.ChatCompletion:
        async with make_async_client(gateway) as client:
            return await client.chat.completions.create(model=MODEL, messages=user("async hello"))

    completion = asyncio.run(run())
    assert completion.choices[0].message.content == FULL_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.model_extra or {}).get("x_sim") is not None
    assert len(sim.chat_requests()) == 1


def test_async_concurrent_requests(gateway: Gateway, sim: Sim) -> None:
    async def run() -> list[openai.types.chat.ChatCompletion]:
        async with make_async_client(gateway) as client:
            return await asyncio.gather(
                *(client.chat.completions.create(model=MODEL, messages=user(f"n{i}"), max_tokens=i + 1) for i in range(8))
            )

    completions = asyncio.run(run())
    for i, completion in enumerate(completions):
        assert completion.choices[0].message.content == " ".join(f"tok{t}" for t in range(i + 1))
    assert len(sim.chat_requests()) == 8
