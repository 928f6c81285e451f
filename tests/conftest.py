"""Shared fixtures: a real Azurite for the whole session, started on free loopback ports."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import settings

from core.clock import FakeClock
from core.runtime import Runtime, install_runtime
from localdev.azurite import Azurite
from tests.support.platform import connector_environ, hosted_app, make_runtime

logging.getLogger("azure").setLevel(logging.WARNING)

# Property tests check behaviour, not speed: a busy CI machine must not fail them on Hypothesis's
# per-example deadline.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as running:
        yield running


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


# --- the emulator, a runtime on it, and the app in the local host ------------------------------

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NEVER = "0 0 0 1 1 *"  # timers fire only when a test asks (POST /admin/functions/<name>)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def emulator(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from localdev.emulator import Emulator

    # The SDK caches ARM tokens by wall time while the tests move the emulator's clock by hours,
    # so the emulator's ARM does not check token lifetimes here (its own tests do).
    with Emulator(clock=clock, seed=7, check_arm_token_lifetime=False) as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_pem_path))
        yield emu


@pytest.fixture
def environ(emulator: Any, azurite: Azurite) -> dict[str, str]:
    return connector_environ(emulator, azurite, FANOUT_SCHEDULE=NEVER, RETENTION_SCHEDULE=NEVER)


@pytest.fixture
def runtime(environ: dict[str, str], clock: FakeClock) -> Iterator[Runtime]:
    rt = make_runtime(environ, clock)
    install_runtime(rt)
    yield rt
    install_runtime(None)


@pytest.fixture
def app_host(runtime: Runtime, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with hosted_app(environ, monkeypatch) as host:
        yield host
