"""The pull window: overlap, lag, connection floor, 90-day floor, bounded steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.settings import load_settings
from ingestion.pull import ARM_RETENTION, next_window
from state.records import SubscriptionRecord

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETTINGS = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})


def _sub(watermark: datetime) -> SubscriptionRecord:
    return SubscriptionRecord(
        subscription_id="s",
        display_name="S",
        state="Enabled",
        discovered_at=watermark,
        connection_id="c",
        watermark=watermark,
    )


def test_window_rereads_the_overlap_and_stops_short_of_now() -> None:
    connected = NOW - timedelta(days=1)
    start, end = next_window(_sub(NOW - timedelta(minutes=5)), connected, NOW, SETTINGS)  # type: ignore[misc]
    assert start == NOW - timedelta(minutes=5) - timedelta(seconds=900)
    assert end == NOW - timedelta(seconds=60)


def test_window_never_starts_before_the_connection() -> None:
    start, _ = next_window(_sub(NOW - timedelta(minutes=3)), NOW - timedelta(minutes=3), NOW, SETTINGS)  # type: ignore[misc]
    assert start == NOW - timedelta(minutes=3)


def test_caught_up_subscription_has_no_window() -> None:
    assert next_window(_sub(NOW - timedelta(seconds=30)), NOW - timedelta(days=1), NOW, SETTINGS) is None


def test_backlog_is_read_in_bounded_windows_within_arm_retention() -> None:
    connected = NOW - timedelta(days=200)
    start, end = next_window(_sub(connected), connected, NOW, SETTINGS)  # type: ignore[misc]
    assert start >= NOW - ARM_RETENTION
    assert end - start <= timedelta(minutes=SETTINGS.pull_max_window_minutes)


@given(
    watermark_age=st.integers(min_value=0, max_value=100 * 24 * 3600),
    connected_age=st.integers(min_value=0, max_value=100 * 24 * 3600),
)
def test_window_invariants(watermark_age: int, connected_age: int) -> None:
    connected = NOW - timedelta(seconds=connected_age)
    watermark = max(connected, NOW - timedelta(seconds=watermark_age))
    window = next_window(_sub(watermark), connected, NOW, SETTINGS)
    if window is None:
        lag_edge = NOW - timedelta(seconds=SETTINGS.pull_lag_seconds)
        assert watermark >= lag_edge or connected >= lag_edge
        return
    start, end = window
    assert connected <= start < end <= NOW - timedelta(seconds=SETTINGS.pull_lag_seconds)
    assert start >= NOW - ARM_RETENTION
    assert end > watermark  # every window moves the watermark forward
    assert start <= max(watermark, NOW - ARM_RETENTION + timedelta(minutes=10))  # no gap after the watermark
