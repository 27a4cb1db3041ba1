"""Fixtures: one simulator and one gateway for the session, reset between tests.

Tests whose faults could leave state in a gateway (cool-downs, breakers) ask for `fresh_gateway`,
a gateway of their own that shares the session's simulator.

`llamaindex/` runs in a venv of its own (its OpenAI integration pins openai<3; see
host/xtask/src/e2e_python.rs): in a venv without llama_index it is not collected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from freeway_e2e import GATEWAY_KEY, Gateway, Sim, make_client

try:
    import llama_index.core  # noqa: F401
except ImportError:
    collect_ignore = ["llamaindex"]


def _start(factory: Callable[[], object]) -> object:
    try:
        return factory()
    except RuntimeError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    started = _start(lambda: Sim(tmp_path_factory.mktemp("sim")))
    assert isinstance(started, Sim)
    yield started
    started.stop()


@pytest.fixture(scope="session")
def gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = _start(lambda: Gateway(sim, tmp_path_factory.mktemp("gateway")))
    assert isinstance(started, Gateway)
    yield started
    started.stop()


@pytest.fixture(scope="session")
def auth_gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = _start(
        lambda: Gateway(sim, tmp_path_factory.mktemp("auth-gateway"), api_keys=[GATEWAY_KEY], name="freeway-auth")
    )
    assert isinstance(started, Gateway)
    yield started
    started.stop()


@pytest.fixture(scope="session")
def embed_gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose provider also serves the embedding model EMBED_MODEL."""
    started = _start(
        lambda: Gateway(sim, tmp_path_factory.mktemp("embed-gateway"), name="freeway-embed", embeddings=True)
    )
    assert isinstance(started, Gateway)
    yield started
    started.stop()


@pytest.fixture
def fresh_gateway(sim: Sim, tmp_path: object) -> Iterator[Gateway]:
    started = _start(lambda: Gateway(sim, tmp_path / "fresh-gateway", name="freeway-fresh"))  # type: ignore[operator]
    assert isinstance(started, Gateway)
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _reset_sim(sim: Sim) -> Iterator[None]:
    sim.reset()
    yield
    sim.reset()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with make_client(gateway) as c:
        yield c


@pytest.fixture
def fresh_client(fresh_gateway: Gateway) -> Iterator[openai.OpenAI]:
    with make_client(fresh_gateway) as c:
        yield c
