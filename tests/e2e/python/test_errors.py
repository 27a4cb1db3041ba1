"""Errors surface as the SDK's own exception types, with OpenAI-shaped bodies.

Tests that make the upstream fail use `fresh_client` (a gateway of their own), so a cool-down or
breaker that the failure leaves behind cannot leak into other tests.
"""

from __future__ import annotations

import asyncio

import openai
import pytest

from freeway_e2e import FULL_REPLY, httpx, GATEWAY_KEY, MODEL, Gateway, Sim, make_async_client, make_client, user

CHAT = "/chat/completions"


def _error_fields(err: openai.APIStatusError) -> dict[str, object]:
    body = err.body
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    # The SDK hands over the inner `error` object; be tolerant of it handing over the envelope.
    inner = body.get("error", body)
    assert isinstance(inner, dict)
    for field in ("message", "type", "param", "code"):
        assert field in inner, f"error object lacks {field!r}: {inner}"
    return inner


def test_unknown_model_is_not_found(client: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=user())

    err = info.value
    assert err.status_code == 404
    assert err.code == "model_not_found"
    fields = _error_fields(err)
    assert fields["code"] == "model_not_found"
    assert "no-such-model" in str(fields["message"])
    assert sim.chat_requests() == [], "an unknown model must not reach the upstream"


def test_messages_as_string_is_bad_request(client: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages="not a list")  # type: ignore[arg-type]

    err = info.value
    assert err.status_code == 400
    assert err.code == "invalid_type"
    assert err.param == "messages"
    fields = _error_fields(err)
    assert fields["type"] == "invalid_request_error"
    assert fields["param"] == "messages"
    assert sim.chat_requests() == []


def test_upstream_500_is_internal_server_error(fresh_client: openai.OpenAI, sim: Sim) -> None:
    sim.script(
        {
            "match": {"path_suffix": CHAT},
            "action": {
                "type": "status",
                "status": 500,
                "body": {"error": {"message": "the sim's disk is on fire", "type": "server_error"}},
            },
        }
    )
    with pytest.raises(openai.InternalServerError) as info:
        fresh_client.chat.completions.create(model=MODEL, messages=user())

    err = info.value
    assert err.status_code == 502
    assert err.code == "upstream_server_error"
    assert "the sim's disk is on fire" in err.message
    assert "the sim's disk is on fire" in str(_error_fields(err)["message"])
    assert len(sim.chat_requests()) >= 1


def test_upstream_503_is_503(fresh_client: openai.OpenAI, sim: Sim) -> None:
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "status", "status": 503}})
    with pytest.raises(openai.InternalServerError) as info:
        fresh_client.chat.completions.create(model=MODEL, messages=user())

    assert info.value.status_code == 503
    _error_fields(info.value)


def test_all_rate_limited_is_rate_limit_error(fresh_client: openai.OpenAI, sim: Sim) -> None:
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "rate_limit", "retry_after_s": 7}})
    with pytest.raises(openai.RateLimitError) as info:
        fresh_client.chat.completions.create(model=MODEL, messages=user())

    err = info.value
    assert err.status_code == 429
    retry_after = err.response.headers.get("retry-after")
    assert retry_after is not None, f"no Retry-After header; headers: {dict(err.response.headers)}"
    assert 1 <= int(retry_after) <= 60
    fields = _error_fields(err)
    assert fields["type"] == "rate_limit_error"


def test_stream_cut_after_three_chunks_raises_api_error(fresh_client: openai.OpenAI, sim: Sim) -> None:
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "drop_after", "chunks": 3}})
    stream = fresh_client.chat.completions.create(model=MODEL, messages=user(), stream=True)

    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)

    err = info.value
    assert not isinstance(err, openai.APIStatusError), "the stream had started: the status was 200"
    assert err.message
    assert isinstance(err.body, dict) and err.body.get("message"), err.body
    # What arrived before the cut is delivered, then a final chunk with finish_reason "error".
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert FULL_REPLY.startswith(text)
    assert text != FULL_REPLY
    assert received and received[-1].choices and received[-1].choices[0].finish_reason == "error"


def test_async_stream_cut_raises_api_error(fresh_gateway: Gateway, sim: Sim) -> None:
    sim.script({"match": {"path_suffix": CHAT}, "action": {"type": "drop_after", "chunks": 3}})

    async def run() -> None:
        async with make_async_client(fresh_gateway) as client:
            stream = await client.chat.completions.create(model=MODEL, messages=user(), stream=True)
            async for _ in stream:
                pass

    with pytest.raises(openai.APIError) as info:
        asyncio.run(run())
    assert not isinstance(info.value, openai.APIStatusError)


def test_async_not_found(gateway: Gateway) -> None:
    async def run() -> None:
        async with make_async_client(gateway) as client:
            await client.chat.completions.create(model="no-such-model", messages=user())

    with pytest.raises(openai.NotFoundError) as info:
        asyncio.run(run())
    assert info.value.code == "model_not_found"


def test_missing_key_is_authentication_error(auth_gateway: Gateway, sim: Sim) -> None:
    with make_client(auth_gateway, api_key="wrong-key") as client:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model=MODEL, messages=user())
    err = info.value
    assert err.status_code == 401
    assert err.code == "invalid_api_key"
    _error_fields(err)

    # No Authorization header at all (the SDK refuses to send that, so plain HTTP).
    response = httpx.post(
        auth_gateway.base_url + "/chat/completions", json={"model": MODEL, "messages": user()}, timeout=15.0
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_api_key"

    assert sim.chat_requests() == [], "an unauthenticated request must not reach the upstream"

    with make_client(auth_gateway, api_key=GATEWAY_KEY) as client:
        completion = client.chat.completions.create(model=MODEL, messages=user())
        assert completion.choices[0].message.content == FULL_REPLY
        assert MODEL in [m.id for m in client.models.list()]
