"""The connector's ARM token goes to ARM_ENDPOINT only: stored and returned paging links are checked first.

Each test points a link at a trusted HTTPS trap on loopback (a request to it would succeed) and
requires that the trap receives nothing, and that no event is lost on the way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.arm import ArmClient, ArmLinkRefused
from core.runtime import Runtime
from ingestion import pull as pull_module
from ingestion.pull import pull_subscription
from tests.integration.test_pull import active_ids, connect, expected_events, fanout, message_for, stored_ids
from tests.support.trap import Trap, trap_server

pytestmark = pytest.mark.integration


@pytest.fixture
def trap(emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Listed first by each test, so that the runtime's clients are built trusting the trap too."""
    with trap_server(emulator.ca_pem_path, tmp_path / "bundle.pem") as running:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "bundle.pem"))
        yield running


def _log_path(sub: str) -> str:
    return f"/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values"


def test_the_trap_is_reachable_with_the_trusted_bundle(trap: Trap) -> None:
    """The control: the trap would receive a request sent through the same HTTP stack."""
    import requests

    assert requests.get(f"{trap.base_url}/subscriptions", timeout=10).status_code == 200
    assert len(trap.requests) == 1
    trap.requests.clear()


@pytest.mark.parametrize("scheme_host", ["trap", "plain-http"])
def test_a_stored_link_elsewhere_is_never_followed_and_the_window_is_read_again(
    trap: Trap, runtime: Runtime, emulator: Any, clock: Any, caplog: pytest.LogCaptureFixture, scheme_host: str
) -> None:
    emulator.set_events_per_hour(300)
    emulator.event_page_size = 50
    connected_at = clock.now()
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(hours=1))
    base = trap.base_url if scheme_host == "trap" else trap.base_url.replace("https://", "http://")
    planted = f"{base}{_log_path(sub)}?api-version=2015-04-01&$skipToken=secret-position"
    record = store.subscriptions.get(sub)
    assert record is not None
    window_end = clock.now() - timedelta(seconds=runtime.settings.pull_lag_seconds)
    store.subscriptions.replace(replace(record, window_start=connected_at, window_end=window_end, next_link=planted))

    with caplog.at_level(logging.WARNING):
        result = pull_subscription(runtime.pull, message_for(store, sub, clock))

    assert trap.requests == []
    assert result.outcome == "caught_up"
    expected = expected_events(emulator, [sub], connected_at, window_end, clock.now())
    got = stored_ids(runtime)
    assert set(got) == set(expected) and set(got.values()) == {1}
    done = store.subscriptions.get(sub)
    assert done is not None and done.watermark == window_end and done.next_link is None and done.status == "OK"
    assert "refused" in caplog.text and "secret-position" not in caplog.text


def test_a_next_link_from_arm_pointing_elsewhere_fails_the_attempt(
    trap: Trap, runtime: Runtime, emulator: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.set_events_per_hour(300)
    emulator.event_page_size = 50
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(hours=1))
    real = pull_module.parse_page

    def answer_with_a_foreign_link(body: bytes, **kwargs: Any) -> Any:
        foreign = f"{trap.base_url}{_log_path(sub)}?api-version=2015-04-01&$skipToken=x"
        return real(body, **kwargs)._replace(next_link=foreign)

    monkeypatch.setattr(pull_module, "parse_page", answer_with_a_foreign_link)
    with pytest.raises(ArmLinkRefused):
        pull_subscription(runtime.pull, message_for(store, sub, clock))
    assert trap.requests == []
    record = store.subscriptions.get(sub)
    assert record is not None and record.status == "Error" and "paging link" in (record.message or "")
    assert record.next_link is not None and record.next_link.startswith(emulator.url)  # the refused one not saved


def test_a_subscription_list_next_link_pointing_elsewhere_is_refused(
    trap: Trap, runtime: Runtime, emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(runtime)
    assert isinstance(runtime.arm, ArmClient)
    real_get = runtime.arm._get

    def listing_with_a_foreign_link(url: str) -> bytes:
        document = json.loads(real_get(url))
        document["nextLink"] = f"{trap.base_url}/subscriptions?api-version=2022-12-01&$skipToken=x"
        return json.dumps(document).encode()

    monkeypatch.setattr(runtime.arm, "_get", listing_with_a_foreign_link)
    result = fanout(runtime)
    assert trap.requests == []
    assert result.error is not None and "paging link" in result.error
