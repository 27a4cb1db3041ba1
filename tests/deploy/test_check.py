#!/usr/bin/env python3
"""Unit tests for check.py: small deployment files, each broken in one way, must fail naming the
file and the key, so that the check cannot pass vacuously. Run: python3 tests/deploy/test_check.py
(PyYAML needed: the xtask runs it with target/tools-venv/bin/python)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check  # noqa: E402

if check.yaml is None:
    sys.exit("PyYAML is missing: run with target/tools-venv/bin/python (cargo xtask test creates it) or pip install pyyaml")

BINARY = check.Binary(
    env={
        "FREEWAY_CONFIG",
        "FREEWAY_LISTEN",
        "FREEWAY_URL",
        "FREEWAY_DATA_DIR",
        "FREEWAY_CACHE_DIR",
        "FREEWAY_API_KEY",
        "FREEWAY_ADMIN_KEY",
        "FREEWAY_MASTER_KEY",
        "FREEWAY_REDIS_URL",
        "FREEWAY_DATABASE_URL",
        "FREEWAY_LOG_JSON",
    },
    commands={
        "": {"log-json", "help", "version"},
        "serve": {"config", "listen", "insecure-no-auth", "help", "log-json"},
        "ready": {"url", "config", "help", "log-json"},
    },
    routes={"/health", "/ready", "/metrics", "/v1/models"},
    provider_keys={"GROQ_API_KEY", "OPENROUTER_API_KEY"},
)

DOCKERFILE = textwrap.dedent(
    """\
    # syntax=docker/dockerfile:1
    FROM rust:1.95-bookworm AS build
    WORKDIR /src
    RUN cargo build --release --locked -p freeway
    FROM gcr.io/distroless/cc-debian12:nonroot
    COPY --from=build /src/target/release/freeway /usr/local/bin/freeway
    # a comment between instructions
    ENV FREEWAY_DATA_DIR=/var/lib/freeway \\
        FREEWAY_CACHE_DIR=/var/cache/freeway \\
        FREEWAY_LISTEN=0.0.0.0:8000
    USER 65532:65532
    EXPOSE 8000
    VOLUME ["/var/lib/freeway", "/var/cache/freeway"]
    HEALTHCHECK --interval=15s --timeout=5s \\
        CMD ["freeway", "ready", "--url", "http://127.0.0.1:8000"]
    ENTRYPOINT ["freeway"]
    CMD ["serve"]
    """
)

COMPOSE = textwrap.dedent(
    """\
    services:
      gateway:
        build: .
        image: freeway:local
        command: ["serve"]
        deploy:
          replicas: 2
        environment:
          FREEWAY_LISTEN: 0.0.0.0:8000
          FREEWAY_DATA_DIR: /var/lib/freeway
          FREEWAY_CACHE_DIR: /var/cache/freeway
          FREEWAY_REDIS_URL: redis://redis:6379
          FREEWAY_DATABASE_URL: postgres://freeway:pw@postgres:5432/freeway
          FREEWAY_MASTER_KEY: ${FREEWAY_MASTER_KEY:?set it}
          FREEWAY_API_KEY: ${FREEWAY_API_KEY:?set it}
          GROQ_API_KEY: ${GROQ_API_KEY:-}
        expose: ["8000"]
        volumes:
          - data:/var/lib/freeway
          - cache:/var/cache/freeway
        healthcheck:
          test: ["CMD", "freeway", "ready", "--url", "http://127.0.0.1:8000"]
      proxy:
        image: nginx:1.28-alpine
        ports:
          - "8000:8000"
        configs:
          - source: nginx
            target: /etc/nginx/conf.d/default.conf
        depends_on:
          - gateway
      redis:
        image: redis:7-alpine
    configs:
      nginx:
        content: |
          upstream freeway {
              server gateway:8000 resolve;
          }
          server {
              listen 8000;
              location / { proxy_pass http://freeway; proxy_set_header Host $$host; }
          }
    volumes:
      data:
      cache:
    """
)

SECRET = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Secret
    metadata:
      name: freeway
    stringData:
      FREEWAY_MASTER_KEY: "x"
      FREEWAY_API_KEY: "y"
      FREEWAY_DATABASE_URL: "postgres://..."
    """
)

CONFIGMAP = textwrap.dedent(
    """\
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: freeway-config
    data:
      freeway.toml: |
        [server]
        allowed_hosts = ["freeway"]
    """
)

DEPLOYMENT = textwrap.dedent(
    """\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: freeway
    spec:
      replicas: 2
      selector:
        matchLabels:
          app: freeway
      template:
        metadata:
          labels:
            app: freeway
          annotations:
            prometheus.io/port: "8000"
            prometheus.io/path: /metrics
        spec:
          containers:
            - name: freeway
              image: registry.example.com/freeway:0.1.0
              args: ["serve"]
              ports:
                - name: http
                  containerPort: 8000
              env:
                - name: FREEWAY_LISTEN
                  value: "0.0.0.0:8000"
                - name: FREEWAY_CONFIG
                  value: /etc/freeway/freeway.toml
                - name: FREEWAY_DATA_DIR
                  value: /var/lib/freeway
                - name: FREEWAY_CACHE_DIR
                  value: /var/cache/freeway
                - name: FREEWAY_REDIS_URL
                  value: redis://redis:6379
                - name: FREEWAY_MASTER_KEY
                  valueFrom:
                    secretKeyRef:
                      name: freeway
                      key: FREEWAY_MASTER_KEY
                - name: FREEWAY_API_KEY
                  valueFrom:
                    secretKeyRef:
                      name: freeway
                      key: FREEWAY_API_KEY
                - name: FREEWAY_DATABASE_URL
                  valueFrom:
                    secretKeyRef:
                      name: freeway
                      key: FREEWAY_DATABASE_URL
              readinessProbe:
                httpGet:
                  path: /ready
                  port: 8000
              livenessProbe:
                httpGet:
                  path: /health
                  port: http
              volumeMounts:
                - name: config
                  mountPath: /etc/freeway
                  readOnly: true
                - name: data
                  mountPath: /var/lib/freeway
                - name: cache
                  mountPath: /var/cache
          volumes:
            - name: config
              configMap:
                name: freeway-config
            - name: data
              emptyDir: {}
            - name: cache
              emptyDir: {}
    """
)

SERVICE = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Service
    metadata:
      name: freeway
    spec:
      selector:
        app: freeway
      ports:
        - name: http
          port: 8000
          targetPort: http
    """
)

K8S = {
    "deploy/kubernetes/secret.yaml": SECRET,
    "deploy/kubernetes/configmap.yaml": CONFIGMAP,
    "deploy/kubernetes/deployment.yaml": DEPLOYMENT,
    "deploy/kubernetes/service.yaml": SERVICE,
}


def replaced(text: str, old: str, new: str) -> str:
    assert old in text, f"the fixture has no {old!r}"
    return text.replace(old, new)


def run(dockerfile=DOCKERFILE, compose=COMPOSE, kubernetes=None, binary=BINARY) -> list[str]:
    files = check.Files(dockerfile=dockerfile, compose=compose, kubernetes=dict(K8S if kubernetes is None else kubernetes))
    return check.check_files(files, binary).failures


def k8s_with(name: str, old: str, new: str) -> dict[str, str]:
    files = dict(K8S)
    files[name] = replaced(files[name], old, new)
    return files


class Fixtures(unittest.TestCase):
    def assertFails(self, failures: list[str], *words: str) -> None:
        """Some failure names every word (the file, the key, the value)."""
        hits = [f for f in failures if all(w in f for w in words)]
        self.assertTrue(hits, f"no failure naming {words} among:\n" + "\n".join(failures or ["(none)"]))

    def test_the_good_files_pass(self):
        # every test below breaks one thing in these; they must be clean to begin with
        self.assertEqual(run(), [])

    # --- 2. env var names ---------------------------------------------------------------------

    def test_a_variable_the_binary_does_not_read_in_compose(self):
        compose = replaced(COMPOSE, "      GROQ_API_KEY:", "      FREEWAY_NOT_READ: x\n      GROQ_API_KEY:")
        self.assertFails(run(compose=compose), "compose.yaml", "FREEWAY_NOT_READ", "not read by the binary")

    def test_a_variable_the_binary_does_not_read_in_the_dockerfile(self):
        dockerfile = replaced(DOCKERFILE, "FREEWAY_LISTEN=0.0.0.0:8000", "FREEWAY_LISTEN=0.0.0.0:8000 FREEWAY_DATADIR=/x")
        self.assertFails(run(dockerfile=dockerfile), "Dockerfile", "FREEWAY_DATADIR")

    def test_a_variable_the_binary_does_not_read_in_kubernetes(self):
        k8s = k8s_with("deploy/kubernetes/secret.yaml", "FREEWAY_API_KEY:", "FREEWAY_API_KEYS:")
        failures = run(kubernetes=k8s)
        self.assertFails(failures, "deploy/kubernetes/secret.yaml", "FREEWAY_API_KEYS")
        # and the Deployment's reference to the old key no longer resolves
        self.assertFails(failures, "deploy/kubernetes/deployment.yaml", "env FREEWAY_API_KEY", "no key")

    def test_a_provider_key_the_catalog_does_not_know(self):
        compose = replaced(COMPOSE, "GROQ_API_KEY: ${GROQ_API_KEY:-}", "GROK_API_KEY: x")
        self.assertFails(run(compose=compose), "compose.yaml services.gateway", "GROK_API_KEY", "catalog")

    # --- 3. ports -------------------------------------------------------------------------------

    def test_expose_differs_from_the_listen_port(self):
        self.assertFails(run(dockerfile=replaced(DOCKERFILE, "EXPOSE 8000", "EXPOSE 9000")), "Dockerfile", "EXPOSE", "9000")

    def test_healthcheck_url_differs_from_the_listen_port(self):
        dockerfile = replaced(DOCKERFILE, '"http://127.0.0.1:8000"]', '"http://127.0.0.1:8080"]')
        self.assertFails(run(dockerfile=dockerfile), "Dockerfile", "HEALTHCHECK", "8080")

    def test_compose_listens_elsewhere(self):
        compose = replaced(COMPOSE, "FREEWAY_LISTEN: 0.0.0.0:8000", "FREEWAY_LISTEN: 0.0.0.0:9000")
        failures = run(compose=compose)
        self.assertFails(failures, "compose.yaml services.gateway", "expose", "9000")
        self.assertFails(failures, "compose.yaml services.gateway", "healthcheck", "9000")
        self.assertFails(failures, "compose.yaml services.gateway", "configs.nginx", "gateway:8000")

    def test_the_proxy_reaches_the_gateway_on_another_port(self):
        compose = replaced(COMPOSE, "server gateway:8000", "server gateway:8080")
        self.assertFails(run(compose=compose), "compose.yaml services.gateway", "configs.nginx", "8080")

    def test_the_proxy_listens_on_a_port_it_does_not_publish(self):
        compose = replaced(COMPOSE, "listen 8000;", "listen 80;")
        self.assertFails(run(compose=compose), "compose.yaml services.proxy", "listens on 80")

    def test_a_listen_flag_wins_over_the_variable(self):
        compose = replaced(COMPOSE, 'command: ["serve"]', 'command: ["serve", "--listen", "0.0.0.0:7000"]')
        self.assertFails(run(compose=compose), "compose.yaml services.gateway", "--listen=0.0.0.0:7000", "expose")

    def test_kubernetes_container_port_differs(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", "containerPort: 8000", "containerPort: 8001")
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "containerPort 8001")

    def test_kubernetes_probe_port_differs(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", "path: /ready\n              port: 8000", "path: /ready\n              port: 8001")
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "readinessProbe.httpGet.port", "8001")

    def test_kubernetes_probe_names_a_port_the_container_lacks(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", "port: http", "port: web")
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "livenessProbe.httpGet.port", "'web'")

    def test_the_scrape_annotation_names_another_port(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", 'prometheus.io/port: "8000"', 'prometheus.io/port: "9100"')
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "prometheus.io/port", "9100")

    def test_service_target_port_is_no_container_port(self):
        k8s = k8s_with("deploy/kubernetes/service.yaml", "targetPort: http", "targetPort: 9090")
        self.assertFails(run(kubernetes=k8s), "service.yaml", "targetPort 9090")

    def test_service_selects_no_gateway(self):
        k8s = k8s_with("deploy/kubernetes/service.yaml", "    app: freeway", "    app: gateway")
        self.assertFails(run(kubernetes=k8s), "service.yaml", "selector", "matches no freeway Deployment")

    def test_loopback_listen_address(self):
        dockerfile = replaced(DOCKERFILE, "FREEWAY_LISTEN=0.0.0.0:8000", "FREEWAY_LISTEN=127.0.0.1:8000")
        self.assertFails(run(dockerfile=dockerfile), "Dockerfile", "FREEWAY_LISTEN=127.0.0.1:8000", "loopback")

    # --- 4. probe paths -------------------------------------------------------------------------

    def test_a_probe_path_the_server_does_not_route(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", "path: /ready", "path: /readyz")
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "readinessProbe.httpGet.path", "/readyz", "not a route")

    def test_freeway_ready_needs_the_ready_route(self):
        binary = check.Binary(BINARY.env, BINARY.commands, {"/health", "/metrics"}, BINARY.provider_keys)
        failures = run(binary=binary)
        self.assertFails(failures, "Dockerfile", "HEALTHCHECK", "/ready", "not a route")
        self.assertFails(failures, "deployment.yaml", "readinessProbe", "/ready")

    def test_a_curl_health_check_is_read_too(self):
        compose = replaced(
            COMPOSE,
            'test: ["CMD", "freeway", "ready", "--url", "http://127.0.0.1:8000"]',
            'test: ["CMD-SHELL", "curl -fsS http://127.0.0.1:8001/readyz"]',
        )
        failures = run(compose=compose)
        self.assertFails(failures, "compose.yaml services.gateway", "healthcheck.test", "/readyz", "not a route")
        self.assertFails(failures, "compose.yaml services.gateway", "healthcheck.test", "port 8001")

    def test_a_missing_readiness_probe(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", "readinessProbe:", "xreadinessProbe:")
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "readinessProbe: missing")

    # --- 5. volumes -----------------------------------------------------------------------------

    def test_the_data_volume_is_elsewhere(self):
        dockerfile = replaced(DOCKERFILE, 'VOLUME ["/var/lib/freeway",', 'VOLUME ["/data",')
        failures = run(dockerfile=dockerfile)
        self.assertFails(failures, "Dockerfile", "FREEWAY_DATA_DIR=/var/lib/freeway", "not a mounted volume")
        self.assertFails(failures, "Dockerfile", "/data holds none of")

    def test_compose_mounts_the_cache_elsewhere(self):
        compose = replaced(COMPOSE, "cache:/var/cache/freeway", "cache:/cache")
        self.assertFails(run(compose=compose), "compose.yaml services.gateway", "FREEWAY_CACHE_DIR", "not a mounted volume")

    def test_the_configuration_file_is_on_no_volume(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", "value: /etc/freeway/freeway.toml", "value: /config/freeway.toml")
        failures = run(kubernetes=k8s)
        self.assertFails(failures, "deployment.yaml", "FREEWAY_CONFIG=/config/freeway.toml", "on no mounted volume")
        self.assertFails(failures, "deployment.yaml", "volumeMounts config", "/etc/freeway holds none of")

    def test_the_configuration_file_is_not_in_the_configmap(self):
        k8s = k8s_with("deploy/kubernetes/deployment.yaml", "value: /etc/freeway/freeway.toml", "value: /etc/freeway/gateway.toml")
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "FREEWAY_CONFIG", "no key 'gateway.toml'")

    def test_a_relative_data_dir(self):
        compose = replaced(COMPOSE, "FREEWAY_DATA_DIR: /var/lib/freeway", "FREEWAY_DATA_DIR: data")
        self.assertFails(run(compose=compose), "compose.yaml", "FREEWAY_DATA_DIR=data", "absolute")

    # --- 6. commands ----------------------------------------------------------------------------

    def test_a_command_the_binary_does_not_have(self):
        self.assertFails(run(dockerfile=replaced(DOCKERFILE, 'CMD ["serve"]', 'CMD ["serv"]')), "Dockerfile", "freeway serv")

    def test_a_flag_the_command_does_not_have(self):
        compose = replaced(COMPOSE, '"ready", "--url"', '"ready", "--uri"')
        self.assertFails(run(compose=compose), "compose.yaml", "healthcheck", "--uri")

    def test_a_health_check_command_the_binary_does_not_have(self):
        binary = check.Binary(BINARY.env, {k: v for k, v in BINARY.commands.items() if k != "ready"}, BINARY.routes)
        self.assertFails(run(binary=binary), "Dockerfile", "HEALTHCHECK", "freeway ready", "not a command")

    # --- what ties the files together ---------------------------------------------------------

    def test_replicas_without_shared_redis(self):
        compose = replaced(COMPOSE, "      FREEWAY_REDIS_URL: redis://redis:6379\n", "")
        self.assertFails(run(compose=compose), "compose.yaml services.gateway", "FREEWAY_REDIS_URL", "2 replicas")

    def test_no_client_keys_beyond_loopback(self):
        compose = replaced(COMPOSE, "      FREEWAY_API_KEY: ${FREEWAY_API_KEY:?set it}\n", "")
        self.assertFails(run(compose=compose), "compose.yaml services.gateway", "FREEWAY_API_KEY", "refuses")

    def test_insecure_no_auth_is_an_explicit_choice(self):
        compose = replaced(COMPOSE, "      FREEWAY_API_KEY: ${FREEWAY_API_KEY:?set it}\n", "")
        compose = replaced(compose, 'command: ["serve"]', 'command: ["serve", "--insecure-no-auth"]')
        self.assertEqual([f for f in run(compose=compose) if "FREEWAY_API_KEY" in f], [])

    def test_master_key_in_plain_text(self):
        k8s = k8s_with(
            "deploy/kubernetes/deployment.yaml",
            "              valueFrom:\n                secretKeyRef:\n                  name: freeway\n                  key: FREEWAY_MASTER_KEY",
            '              value: "c2VjcmV0"',
        )
        self.assertFails(run(kubernetes=k8s), "deployment.yaml", "FREEWAY_MASTER_KEY", "from a Secret")

    def test_a_secret_the_files_do_not_define(self):
        k8s = dict(K8S)
        del k8s["deploy/kubernetes/secret.yaml"]
        failures = run(kubernetes=k8s)
        self.assertFails(failures, "deployment.yaml", "env FREEWAY_MASTER_KEY", "no Secret 'freeway'")
        self.assertFails(failures, "deploy/kubernetes", "no Secret with a FREEWAY_MASTER_KEY")

    def test_the_runtime_stage_runs_as_root(self):
        self.assertFails(run(dockerfile=replaced(DOCKERFILE, "USER 65532:65532", "USER root")), "Dockerfile", "USER", "non-root")

    def test_a_single_stage_build(self):
        dockerfile = replaced(DOCKERFILE, "FROM rust:1.95-bookworm AS build\n", "")
        self.assertFails(run(dockerfile=dockerfile), "Dockerfile", "multi-stage")

    def test_empty_files_fail(self):
        failures = run(dockerfile="", compose="", kubernetes={})
        self.assertFails(failures, "Dockerfile", "no FROM")
        self.assertFails(failures, "compose.yaml", "no gateway service")
        self.assertFails(failures, "deploy/kubernetes", "no Deployment")


class Parsers(unittest.TestCase):
    HELP = textwrap.dedent(
        """\
        Every free LLM tier behind one OpenAI-compatible endpoint

        Usage: freeway [OPTIONS] <COMMAND>

        Commands:
          serve         Run the gateway
          check-config  Validate a configuration file and load the components it names, then
                        exit
          ready         Exit 0 when a running gateway is ready
          help          Print this message or the help of the given subcommand(s)

        Options:
              --log-json  Log as JSON lines instead of text [env: FREEWAY_LOG_JSON=]
          -h, --help      Print help
        """
    )

    def test_help_commands_flags_and_variables(self):
        self.assertEqual(check.help_subcommands(self.HELP), ["serve", "check-config", "ready"])
        self.assertEqual(check.help_flags(self.HELP), {"log-json", "help"})
        self.assertEqual(check.help_env_names(self.HELP), {"FREEWAY_LOG_JSON"})
        self.assertEqual(check.help_env_names("  -c, --config <CONFIG>  [env: FREEWAY_CONFIG=/x.toml]"), {"FREEWAY_CONFIG"})

    def test_source_literals_leave_test_names_out(self):
        src = 'let a = env::var("FREEWAY_REDIS_URL"); let b = "FREEWAY_TEST_DATABASE_URL"; "FREEWAY_SURELY_UNSET_FOR_TEST"'
        self.assertEqual(check.source_env_names(src), {"FREEWAY_REDIS_URL"})

    def test_routes(self):
        src = '.route("/health", get(h))\n        .route(\n "/ready", get(r))\n .merge(x)'
        self.assertEqual(check.source_routes(src), {"/health", "/ready"})

    def test_catalog_key_envs(self):
        text = 'key_env = ["GEMINI_API_KEY", "GOOGLE_API_KEY"]\nkey_env = ["HF_TOKEN"]  # note\n'
        self.assertEqual(check.catalog_key_envs(text), {"GEMINI_API_KEY", "GOOGLE_API_KEY", "HF_TOKEN"})

    def test_listen_forms(self):
        self.assertEqual(check.parse_listen("0.0.0.0:8000"), ("0.0.0.0", 8000))
        self.assertEqual(check.parse_listen("[::]:8000"), ("[::]", 8000))
        self.assertEqual(check.parse_listen("localhost:9"), ("localhost", 9))
        self.assertEqual(check.parse_listen("8000"), ("127.0.0.1", 8000))
        self.assertIsNone(check.parse_listen("gateway"))

    def test_dockerfile_continuations_and_comments(self):
        text = "FROM a AS b\n# c\nENV X=1 \\\n  # inside\n  Y=2\nCMD [\"serve\"]\n"
        self.assertEqual(
            check.dockerfile_instructions(text),
            [(1, "FROM", "a AS b"), (3, "ENV", "X=1 Y=2"), (6, "CMD", '["serve"]')],
        )
        self.assertEqual(check.parse_env_instruction("X=1 Y='a b'"), {"X": "1", "Y": "a b"})
        self.assertEqual(check.parse_env_instruction("X a b"), {"X": "a b"})


def find_hadolint() -> str | None:
    venv = Path(__file__).resolve().parents[2] / "target/tools-venv/bin/hadolint"
    return str(venv) if venv.exists() else shutil.which("hadolint")


@unittest.skipIf(find_hadolint() is None, "hadolint is not installed (the xtask installs it)")
class Hadolint(unittest.TestCase):
    def lint(self, text: str) -> tuple[bool, str]:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "Dockerfile"
            path.write_text(text)
            return check.hadolint(find_hadolint(), path, Path(d))

    def test_a_warning_fails(self):
        ok, out = self.lint("FROM debian\nUSER nobody\nCMD [\"true\"]\n")
        self.assertFalse(ok)
        self.assertIn("DL3006", out)

    def test_the_fixture_is_clean(self):
        ok, out = self.lint(DOCKERFILE)
        self.assertTrue(ok, out)


class EndToEnd(unittest.TestCase):
    """main() against a stand-in binary that prints clap-like help."""

    def setUp(self):
        self.root = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.root)
        (self.root / "deploy/kubernetes").mkdir(parents=True)
        (self.root / "Dockerfile").write_text(DOCKERFILE)
        (self.root / "compose.yaml").write_text(COMPOSE)
        for name, text in K8S.items():
            (self.root / name).write_text(text)
        (self.root / "host/src/server").mkdir(parents=True)
        (self.root / "host/core/src").mkdir(parents=True)
        (self.root / "host/src/server/mod.rs").write_text(
            '.route("/health", get(h))\n.route("/ready", get(r))\n.route("/metrics", get(m))\n'
        )
        (self.root / "host/src/config.rs").write_text(
            'env::var("FREEWAY_REDIS_URL"); env::var("FREEWAY_DATABASE_URL"); "FREEWAY_API_KEY";'
            ' "FREEWAY_DATA_DIR"; "FREEWAY_CACHE_DIR"'
        )
        (self.root / "host/core/src/key.rs").write_text('pub const ENV_KEY: &str = "FREEWAY_MASTER_KEY";')
        (self.root / "config").mkdir()
        (self.root / "config/catalog.toml").write_text('key_env = ["GROQ_API_KEY"]\n')

    def fake_freeway(self, commands: str) -> Path:
        script = self.root / "freeway"
        script.write_text(
            textwrap.dedent(
                f"""\
                #!/bin/sh
                case "$1" in
                  --help) printf 'Usage: freeway <COMMAND>\\n\\nCommands:\\n{commands}  help  Print help\\n\\nOptions:\\n      --log-json  [env: FREEWAY_LOG_JSON=]\\n' ;;
                  serve) printf '  -c, --config <C>  [env: FREEWAY_CONFIG=]\\n      --listen <L>  [env: FREEWAY_LISTEN=]\\n      --insecure-no-auth\\n' ;;
                  ready) printf '      --url <URL>  [env: FREEWAY_URL=]\\n' ;;
                  *) echo "unknown $1" >&2; exit 2 ;;
                esac
                """
            )
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return script

    def main(self, freeway: Path) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = check.main(["--freeway", str(freeway), "--root", str(self.root), "--hadolint", "true"])
        return code, out.getvalue() + err.getvalue()

    @unittest.skipIf(os.name != "posix", "a shell script stands in for the binary")
    def test_passes_against_a_binary_with_everything(self):
        code, out = self.main(self.fake_freeway("  serve  Run\\n  ready  Ready?\\n"))
        self.assertEqual(code, 0, out)

    @unittest.skipIf(os.name != "posix", "a shell script stands in for the binary")
    def test_fails_against_a_binary_without_the_ready_command(self):
        code, out = self.main(self.fake_freeway("  serve  Run\\n"))
        self.assertEqual(code, 1, out)
        self.assertIn("`freeway ready` is not a command", out)
        # FREEWAY_URL was only in `freeway ready --help`; the fixtures do not use it, so no other failure
        self.assertNotIn("not read by the binary", out)

    def test_a_missing_binary_fails(self):
        code, out = self.main(self.root / "no-such-freeway")
        self.assertEqual(code, 1)
        self.assertIn("no-such-freeway", out)


if __name__ == "__main__":
    unittest.main(verbosity=1)
