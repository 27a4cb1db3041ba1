"""Start the simulator and the gateway as subprocesses, and drive the simulator's control API.

Used by conftest.py's fixtures. Every process listens on 127.0.0.1 with an OS-chosen port that is
parsed from its "listening on" log line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import openai

try:  # openai 3.x depends on httpx2; older SDKs on httpx (same API for what is used here).
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

ROOT = Path(os.environ.get("FREEWAY_ROOT") or Path(__file__).resolve().parents[3])
FREEWAY_BIN = Path(os.environ.get("FREEWAY_BIN") or ROOT / "target/debug/freeway")
SIM_BIN = Path(os.environ.get("FREEWAY_SIM_BIN") or ROOT / "target/debug/freeway-sim")

READY_TIMEOUT_S = 30.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")

MODEL = "local-model"
UPSTREAM_KEY = "sk-local-1"
GATEWAY_KEY = "fw-e2e-key"
FULL_REPLY = " ".join(f"tok{i}" for i in range(12))
# Claude model names (a glob) are routed onto `auto:code`, so Claude Code and the anthropic SDK run
# on the simulated free model: every gateway's config has this [[routes]] entry.
CLAUDE_GLOB = "claude-*"
CLAUDE_ROUTE_TO = "auto:code"
CLAUDE_MODEL = "claude-sonnet-4-5-20250929"
ANTHROPIC_VERSION = "2023-06-01"
# An embedding model of the simulated provider (`Gateway(..., embeddings=True)`).
EMBED_MODEL = "local-embedding"
# What the simulator says when a request with tools has this in its last user message.
TOOL_TRIGGER = "call a tool"
TOOL_ARGUMENTS = {"sim": True}


def _read(path: Path) -> str:
    try:
        return ANSI.sub("", path.read_text(errors="replace"))
    except FileNotFoundError:
        return ""


class Process:
    """A child process whose stdout/stderr go to files in `workdir`."""

    def __init__(self, name: str, args: list[str], workdir: Path, ready: re.Pattern[str]):
        self.name = name
        self.workdir = workdir
        self.stdout_path = workdir / f"{name}.stdout.log"
        self.stderr_path = workdir / f"{name}.stderr.log"
        if not Path(args[0]).exists():
            raise RuntimeError(
                f"{name}: binary {args[0]} is missing; build it with `cargo xtask build` "
                "(or set FREEWAY_BIN / FREEWAY_SIM_BIN)"
            )
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=workdir,
                start_new_session=True,
            )
        self.port = self._wait_for(ready)

    def output(self) -> str:
        return (
            f"--- {self.name} stdout ---\n{_read(self.stdout_path)}"
            f"--- {self.name} stderr ---\n{_read(self.stderr_path)}"
        )

    def _wait_for(self, ready: re.Pattern[str]) -> int:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            match = ready.search(_read(self.stdout_path))
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.proc.returncode} before it was ready\n"
                    + self.output()
                )
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not print its listening line within {READY_TIMEOUT_S:.0f}s\n"
            + self.output()
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class Sim:
    """The fake upstream, plus its control API."""

    def __init__(self, workdir: Path):
        self.process = Process(
            "freeway-sim",
            [str(SIM_BIN), "--listen", "127.0.0.1:0"],
            workdir,
            re.compile(r"freeway-sim listening on http://127\.0\.0\.1:(\d+)"),
        )
        self.url = f"http://127.0.0.1:{self.process.port}"
        self.base_url = self.url + "/v1"
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def _ok(self, response: Any) -> Any:
        assert response.status_code == 200, f"sim control call failed: {response.status_code} {response.text}"
        return response.json()

    def script(self, *rules: dict[str, Any]) -> dict[str, Any]:
        """Appends rules (see tests/sim/README.md)."""
        return self._ok(self.http.post("/_sim/script", json={"rules": list(rules)}))

    def reset(self) -> None:
        self._ok(self.http.post("/_sim/reset"))

    def requests(self) -> list[dict[str, Any]]:
        return self._ok(self.http.get("/_sim/requests"))

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["path"].endswith("/chat/completions")]

    def embedding_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["path"].endswith("/embeddings")]

    def reply_once(self, content: str, **fields: Any) -> None:
        """The next chat completion answers `content` (a scripted `reply`)."""
        action: dict[str, Any] = {"type": "reply", "content": content, **fields}
        self.script({"match": {"path_suffix": "/chat/completions"}, "times": 1, "action": action})

    def stats(self) -> dict[str, Any]:
        return self._ok(self.http.get("/_sim/stats"))

    def stop(self) -> None:
        self.http.close()
        self.process.stop()


class Gateway:
    """One `freeway serve` process whose only provider is the simulator."""

    def __init__(
        self,
        sim: Sim,
        workdir: Path,
        api_keys: list[str] | None = None,
        name: str = "freeway",
        embeddings: bool = False,
        cache: bool = False,
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        policies = workdir / "policies"
        policies.mkdir(exist_ok=True)
        # the default routing policy, so `model="auto"` works as it does for users
        (policies / "smart.wasm").write_bytes((ROOT / "policies" / "smart.wasm").read_bytes())
        keys_line = f"api_keys = {_toml_list(api_keys)}\n" if api_keys else ""
        # the chat model says what it can do, so policy routes (auto:code, for Claude model
        # names) offer it requests with tools or images; `embeddings = true` marks a model for
        # POST /v1/embeddings only (never chat)
        chat_model = f"{{ id = {_toml_str(MODEL)}, tools = true, vision = true }}"
        embed_model = f", {{ id = {_toml_str(EMBED_MODEL)}, embeddings = true }}" if embeddings else ""
        models = f"[{chat_model}{embed_model}]"
        config = workdir / "freeway.toml"
        config.write_text(
            "[server]\n"
            "shutdown_grace_secs = 2\n"
            f"{keys_line}"
            "[runtime]\n"
            f"providers_dir = {_toml_str(ROOT / 'providers')}\n"
            f"policies_dir = {_toml_str(policies)}\n"
            f"cache_dir = {_toml_str(ROOT / 'target/e2e-component-cache')}\n"
            "max_instances = 64\n"
            "[upstream]\n"
            "max_attempts = 3\n"
            'egress_hosts = ["127.0.0.1", "::1", "localhost"]\n'
            "[storage]\n"
            f"url = {_toml_str('sqlite://' + str(workdir / 'freeway.db'))}\n"
            "[quota]\n"
            f"state_file = {_toml_str(workdir / 'quota.json')}\n"
            "[vault]\n"
            f"path = {_toml_str(workdir / 'vault.json')}\n"
            f"key_file = {_toml_str(workdir / 'master.key')}\n"
            f"audit_log = {_toml_str(workdir / 'audit.log')}\n"
            f"health_file = {_toml_str(workdir / 'health.json')}\n"
            "[routing]\n"
            f"stats_file = {_toml_str(workdir / 'route-stats.json')}\n"
            "[discovery]\n"
            "interval_secs = 0\n"
            f"state_file = {_toml_str(workdir / 'models.json')}\n"
            + ("[cache]\nenabled = true\n" if cache else "")
            + "[[providers]]\n"
            'id = "local"\n'
            'component = "openai-compat"\n'
            f'base_url = "{sim.base_url}"\n'
            f'api_keys = ["{UPSTREAM_KEY}"]\n'
            f"models = {models}\n"
            "[[routes]]\n"
            f"model = {_toml_str(CLAUDE_GLOB)}\n"
            f"to = {_toml_str(CLAUDE_ROUTE_TO)}\n"
        )
        self.api_keys = api_keys
        self.config = config
        self.process = Process(
            name,
            [str(FREEWAY_BIN), "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
            workdir,
            re.compile(r"freeway listening on http://127\.0\.0\.1:(\d+)"),
        )
        self.url = f"http://127.0.0.1:{self.process.port}"
        self.base_url = self.url + "/v1"
        try:
            self._wait_ready()
        except BaseException:
            self.process.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(self.url + "/ready", timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as err:
                last = repr(err)
            if self.process.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.process.name}: GET /ready never returned 200 (last: {last})\n" + self.process.output())

    def stop(self) -> None:
        self.process.stop()


def _toml_str(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def user(content: str = "Say hello") -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def parse_route(header: str) -> dict[str, str]:
    """`provider=local; model=local-model; ...` -> dict."""
    out = {}
    for part in header.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def make_client(gw: Gateway, api_key: str = "anything") -> openai.OpenAI:
    # max_retries=0: the SDK would otherwise retry 429/5xx itself.
    return openai.OpenAI(base_url=gw.base_url, api_key=api_key, max_retries=0, timeout=15.0)


def make_async_client(gw: Gateway, api_key: str = "anything") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=api_key, max_retries=0, timeout=15.0)


def make_anthropic(gw: Gateway, api_key: str = "anything") -> Any:
    """The official anthropic client on the gateway (imported here: the LlamaIndex venv lacks it)."""
    import anthropic

    # base_url without /v1: the SDK asks for /v1/messages itself.
    return anthropic.Anthropic(base_url=gw.url, api_key=api_key, max_retries=0, timeout=15.0)


def sim_prompt_tokens(body: dict[str, Any]) -> int:
    """The simulator's prompt token count of an upstream chat body: characters of every message's
    text (a string, or the `text` of its parts) / 4, at least 1 (tests/sim/src/chat.rs)."""
    chars = 0
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return max(chars // 4, 1)


def sse_events(lines: Any) -> list[tuple[str | None, Any]]:
    """Parses server-sent events from an iterator of text lines into (event name, data) pairs;
    data is decoded JSON, or the raw string when it is not JSON (such as `[DONE]`)."""
    import json

    events: list[tuple[str | None, Any]] = []
    name: str | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    events.append((name, json.loads(text)))
                except ValueError:
                    events.append((name, text))
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        text = "\n".join(data)
        try:
            events.append((name, json.loads(text)))
        except ValueError:
            events.append((name, text))
    return events


# content block type -> the delta types it may carry
_DELTAS = {
    "text": {"text_delta", "citations_delta"},
    "tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
}


def check_anthropic_stream(events: list[tuple[str | None, Any]]) -> dict[str, Any]:
    """Asserts Anthropic's streaming grammar and rebuilds the message from it:

        message_start (content [] and usage), then for each block i = 0, 1, ...:
        content_block_start(i) · content_block_delta(i)* · content_block_stop(i),
        then one message_delta (stop_reason, usage.output_tokens), then message_stop, last.

    `ping` may appear anywhere after message_start. Every SSE `event:` name equals its data's `type`.
    Returns the message with its content blocks (text joined, tool input parsed from its JSON)."""
    import json

    assert events, "no events"
    for name, data in events:
        assert isinstance(data, dict), f"event data is not an object: {data!r}"
        assert name == data.get("type"), f"event name {name!r} differs from its data's type {data.get('type')!r}"
    kinds = [d["type"] for _, d in events if d["type"] != "ping"]
    assert kinds[0] == "message_start", kinds
    assert kinds[-1] == "message_stop", kinds
    assert kinds.count("message_start") == 1 and kinds.count("message_stop") == 1, kinds
    assert kinds.count("message_delta") == 1, kinds
    assert kinds[-2] == "message_delta", f"message_delta must come right before message_stop: {kinds}"
    assert "error" not in kinds, kinds
    assert events[0][1]["type"] == "message_start", "message_start must be the first event (before any ping)"
    message = dict(events[0][1]["message"])
    assert message["type"] == "message" and message["role"] == "assistant", message
    assert message["content"] == [], message
    assert isinstance(message["usage"]["input_tokens"], int), message["usage"]
    blocks: list[dict[str, Any]] = []
    partial: list[str] = []
    open_index: int | None = None
    delta_event: dict[str, Any] | None = None
    for _, d in events:
        kind = d["type"]
        if kind == "content_block_start":
            assert open_index is None, f"block {d['index']} started inside block {open_index}"
            assert d["index"] == len(blocks), f"block indexes must count 0, 1, ...: got {d['index']}"
            assert delta_event is None, "a content block after message_delta"
            block = dict(d["content_block"])
            assert block["type"] in _DELTAS, block
            if block["type"] == "text":
                assert block["text"] == "", block
            if block["type"] == "tool_use":
                assert block["id"] and block["name"] and block["input"] == {}, block
            blocks.append(block)
            partial = []
            open_index = d["index"]
        elif kind == "content_block_delta":
            assert open_index == d["index"], f"delta for block {d['index']}, open: {open_index}"
            block = blocks[open_index]
            delta = d["delta"]
            assert delta["type"] in _DELTAS[block["type"]], f"{delta['type']} in a {block['type']} block"
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                partial.append(delta["partial_json"])
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
        elif kind == "content_block_stop":
            assert open_index == d["index"], f"stop for block {d['index']}, open: {open_index}"
            block = blocks[open_index]
            if block["type"] == "tool_use":
                text = "".join(partial)
                block["input"] = json.loads(text) if text else {}
                assert isinstance(block["input"], dict), block
            open_index = None
        elif kind == "message_delta":
            assert open_index is None, f"message_delta while block {open_index} is open"
            delta_event = d
    assert delta_event is not None
    assert delta_event["delta"]["stop_reason"] in {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}, delta_event
    assert isinstance(delta_event["usage"]["output_tokens"], int), delta_event
    message["content"] = blocks
    message["stop_reason"] = delta_event["delta"]["stop_reason"]
    message["stop_sequence"] = delta_event["delta"].get("stop_sequence")
    usage = dict(message["usage"])
    usage.update({k: v for k, v in delta_event["usage"].items() if v is not None})
    message["usage"] = usage
    return message
