"""The emulator's Activity Log `$filter` grammar and its timestamp format, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localdev.emulator.odata_filter import RETENTION_TICKS, FilterError, parse_filter
from localdev.emulator.timefmt import format_ticks, from_ticks, parse_timestamp, to_ticks

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NOW_TICKS = to_ticks(NOW)


@given(
    st.integers(
        min_value=to_ticks(datetime(2000, 1, 1, tzinfo=UTC)), max_value=to_ticks(datetime(2100, 1, 1, tzinfo=UTC))
    )
)
def test_timestamps_round_trip_at_full_precision(ticks: int) -> None:
    text = format_ticks(ticks)
    assert len(text) == len("2026-11-26T12:00:00.1234567Z") and text.endswith("Z")
    assert parse_timestamp(text) == ticks
    assert to_ticks(from_ticks(ticks)) == ticks - ticks % 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
        ("2026-11-26T12:30", datetime(2026, 11, 26, 12, 30, tzinfo=UTC)),
        ("2026-11-26T12:30:15Z", datetime(2026, 11, 26, 12, 30, 15, tzinfo=UTC)),
        ("2026-11-26T12:30:15.5Z", datetime(2026, 11, 26, 12, 30, 15, 500000, tzinfo=UTC)),
        ("2026-11-26T14:30:15+02:00", datetime(2026, 11, 26, 12, 30, 15, tzinfo=UTC)),
        ("2026-11-26T12:30:15", datetime(2026, 11, 26, 12, 30, 15, tzinfo=UTC)),
    ],
)
def test_timestamp_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == to_ticks(expected)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-02-30", "2026-11-26T25:00:00Z", "2026-11-26T12:00:00.12345678Z"]
)
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_a_full_filter_parses() -> None:
    parsed = parse_filter(
        "eventTimestamp ge '2026-11-26T10:00:00.1234567Z' and eventTimestamp le '2026-11-26T11:00:00Z' "
        "and eventChannels eq 'Admin, Operation' and levels eq 'Error,Warning' and resourceGroupName eq 'RG-A'",
        NOW_TICKS,
    )
    assert parsed.start == parse_timestamp("2026-11-26T10:00:00.1234567Z")
    assert parsed.end == parse_timestamp("2026-11-26T11:00:00Z")
    assert parsed.channels == {"admin", "operation"} and parsed.levels == {"error", "warning"}
    assert parsed.scope == ("resourceGroupName", "rg-a") and parsed.has_clauses
    event = {"channels": "Operation", "level": "Error", "resourceGroupName": "rg-a"}
    assert parsed.matches(event)
    assert not parsed.matches({**event, "level": "Informational"})
    assert not parsed.matches({**event, "resourceGroupName": "rg-b"})
    assert not parsed.matches({**event, "channels": "Debug"})


def test_quotes_inside_values_are_doubled() -> None:
    parsed = parse_filter(f"eventTimestamp ge '{format_ticks(NOW_TICKS)}' and correlationId eq 'it''s'", NOW_TICKS)
    assert parsed.scope == ("correlationId", "it's")
    assert parsed.end is None and parsed.start == NOW_TICKS


def test_the_start_may_not_be_older_than_ninety_days() -> None:
    edge = NOW_TICKS - RETENTION_TICKS
    assert parse_filter(f"eventTimestamp ge '{format_ticks(edge)}'", NOW_TICKS).start == edge
    with pytest.raises(FilterError, match="90 days"):
        parse_filter(f"eventTimestamp ge '{format_ticks(edge - 1)}'", NOW_TICKS)
    # Follow-up pages (with a $skiptoken) are not re-checked.
    assert parse_filter(f"eventTimestamp ge '{format_ticks(edge - 1)}'", NOW_TICKS, check_retention=False)


@given(
    start=st.datetimes(min_value=datetime(2026, 9, 1), max_value=datetime(2026, 11, 26), timezones=st.just(UTC)),
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_any_valid_range_parses(start: datetime, length: timedelta) -> None:
    end = start + length
    parsed = parse_filter(
        f"eventTimestamp ge '{format_ticks(to_ticks(start))}' and eventTimestamp le '{format_ticks(to_ticks(end))}'",
        NOW_TICKS,
    )
    assert (parsed.start, parsed.end) == (to_ticks(start), to_ticks(end))
    assert not parsed.has_clauses


@given(st.text(max_size=60))
def test_arbitrary_text_is_parsed_or_refused_cleanly(text: str) -> None:
    try:
        parse_filter(text, NOW_TICKS)
    except FilterError as error:
        assert error.code == "BadRequest" and error.message


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        (
            "eventTimestamp ge 2026-11-26T10:00:00Z and eventTimestamp le 2026-11-26T11:00:00.5Z",
            "2026-11-26T10:00:00Z",
            "2026-11-26T11:00:00.5Z",
        ),
        (
            "eventTimestamp ge '2026-11-25' and eventTimestamp le '2026-11-26'",
            "2026-11-25T00:00:00Z",
            "2026-11-26T00:00:00Z",
        ),
        (
            "eventTimestamp ge 2026-11-25 and eventTimestamp le '2026-11-26T01:02:03.1234567Z'",
            "2026-11-25T00:00:00Z",
            "2026-11-26T01:02:03.1234567Z",
        ),
    ],
)
def test_unquoted_and_date_only_timestamps_are_taken_as_arm_takes_them(text: str, start: str, end: str) -> None:
    parsed = parse_filter(text, NOW_TICKS)
    assert (parsed.start, parsed.end) == (parse_timestamp(start), parse_timestamp(end))


@pytest.mark.parametrize(
    "text",
    [
        "eventTimestamp ge 2026-13-45",
        "eventTimestamp ge yesterday",
        "eventTimestamp ge 2026-11-26 10:00",
        "resourceGroupName eq rg-a and eventTimestamp ge 2026-11-26",
    ],
)
def test_other_unquoted_values_are_still_refused(text: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(text, NOW_TICKS)
