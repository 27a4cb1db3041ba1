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

    def stats(self) -> dict[str, Any]:
        return self._ok(self.http.get("/_sim/stats"))

    def stop(self) -> None:
        self.http.close()
        self.process.stop()


class Gateway:
    """One `freeway serve` process whose only provider is the simulator."""

    def __init__(self, sim: Sim, workdir: Path, api_keys: list[str] | None = None, name: str = "freeway"):
        workdir.mkdir(parents=True, exist_ok=True)
        policies = workdir / "policies"
        policies.mkdir(exist_ok=True)
        # the default routing policy, so `model="auto"` works as it does for users
        (policies / "smart.wasm").write_bytes((ROOT / "policies" / "smart.wasm").read_bytes())
        keys_line = f"api_keys = {_toml_list(api_keys)}\n" if api_keys else ""
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
            "[[providers]]\n"
            'id = "local"\n'
            'component = "openai-compat"\n'
            f'base_url = "{sim.base_url}"\n'
            f'api_keys = ["{UPSTREAM_KEY}"]\n'
            f'models = ["{MODEL}"]\n'
        )
        self.api_keys = api_keys
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
