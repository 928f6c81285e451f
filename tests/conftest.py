"""Shared fixtures: a real Azurite for the whole session, started on free loopback ports."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from localdev.azurite import Azurite

logging.getLogger("azure").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as running:
        yield running


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string
