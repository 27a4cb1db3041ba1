"""Virtual keys made by the `freeway keys` CLI, used by the official SDKs: a key works, its model
list and daily budget are enforced with the SDK's own exception types (and an honest
Retry-After), `/v1/models` lists what it may use, and a revoked key stops working within 5 s."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

import anthropic
import openai
import pytest

from freeway_e2e import FREEWAY_BIN, MODEL, Gateway, httpx, make_anthropic, make_client, user


def _keys(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FREEWAY_BIN), "keys", *args, "--config", str(gw.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _create(gw: Gateway, *args: str) -> str:
    out = _keys(gw, "create", "--json", *args)
    assert out.returncode == 0, out.stderr
    key = json.loads(out.stdout)["key"]
    assert key.startswith("fw-")
    return key


def _until(check, seconds: float = 5.0) -> float:
    """Seconds until `check()` is true (fails after `seconds`)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"not within {seconds} s")


def _in_force(gw: Gateway) -> bool:
    """The gateway has seen a key: a request without one is refused (until then it is open)."""
    bare = httpx.post(gw.base_url + "/chat/completions", json={"model": MODEL, "messages": user()}, timeout=15)
    return bare.status_code == 401


def _served(client: openai.OpenAI, model: str = MODEL) -> bool:
    try:
        client.chat.completions.create(model=model, messages=user(), max_tokens=8)
        return True
    except openai.AuthenticationError:
        return False


def test_a_cli_key_is_held_to_its_models_and_daily_budget(fresh_gateway: Gateway) -> None:
    secret = _create(fresh_gateway, "--name", "sdk-user", "--models", MODEL, "--rpd", "3")
    client = make_client(fresh_gateway, api_key=secret)
    # no key at all is refused once the gateway has seen the key (the SDK refuses to send none)
    _until(lambda: _in_force(fresh_gateway))
    with pytest.raises(openai.AuthenticationError):
        make_client(fresh_gateway, api_key="fw-guessed").chat.completions.create(model=MODEL, messages=user())
    # a model outside the list: PermissionDeniedError (403)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="auto", messages=user())
    assert denied.value.body["code"] == "model_not_allowed"
    assert [m.id for m in client.models.list()] == [MODEL]

    client.chat.completions.create(model=MODEL, messages=user(), max_tokens=8)
    client.chat.completions.create(model=MODEL, messages=user(), max_tokens=8)
    # the Anthropic SDK with the same key spends the same budget
    reply = make_anthropic(fresh_gateway, api_key=secret).messages.create(
        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=MODEL, messages=user(), max_tokens=8)
    assert limited.value.body["code"] == "insufficient_quota"
    retry = int(limited.value.response.headers["retry-after"])
    now = datetime.now(timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(retry - (midnight - now).total_seconds()) <= 3
    with pytest.raises(anthropic.RateLimitError):
        make_anthropic(fresh_gateway, api_key=secret).messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )

    # listed masked, with its use
    listed = _keys(fresh_gateway, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    [key] = json.loads(listed.stdout)["data"]
    assert key["name"] == "sdk-user" and key["limits"]["rpd"] == {"used": 3, "limit": 3}


def test_a_revoked_key_stops_working_within_5_seconds(fresh_gateway: Gateway) -> None:
    secret = _create(fresh_gateway, "--name", "leaving")
    client = make_client(fresh_gateway, api_key=secret)
    _until(lambda: _in_force(fresh_gateway))
    assert _served(client)
    revoked = _keys(fresh_gateway, "revoke", "leaving")
    assert revoked.returncode == 0, revoked.stderr
    took = _until(lambda: not _served(client))
    assert took < 5.0
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model=MODEL, messages=user())
    assert "revoked" in str(err.value)
