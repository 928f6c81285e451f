"""Query-string parameters: each bad value is an InvalidInput naming its parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activity_api import params
from core.errors import InvalidInput

pytestmark = pytest.mark.unit


def _field(call: object) -> str:
    assert callable(call)
    with pytest.raises(InvalidInput) as caught:
        call()
    return caught.value.field


def test_unknown_parameters_are_named_with_a_hint() -> None:
    allowed = ("from", "subscriptionId", "limit")
    params.reject_unknown({"from": "x", "code": "function-key"}, allowed)
    with pytest.raises(InvalidInput) as caught:
        params.reject_unknown({"zeta": "1", "subscriptionid": "s", "limit": "3"}, allowed)
    assert caught.value.field == "subscriptionid, zeta"
    assert "did you mean subscriptionId?" in caught.value.message


def test_unknown_parameter_names_are_echoed_short_and_escaped() -> None:
    long_name = "x" * 5000
    with pytest.raises(InvalidInput) as caught:
        params.reject_unknown({long_name: "1", "a\nb\x1b[31m": "2"}, ("from",))
    message = caught.value.message
    assert long_name not in message and "x" * 40 + "…" in message
    assert "\n" not in message and "\x1b" not in message and "a\\x0ab\\x1b[31m" in message
    many = {f"p{i}": "1" for i in range(50)}
    with pytest.raises(InvalidInput) as caught:
        params.reject_unknown(many, ("from",))
    assert caught.value.field.endswith("and 45 more") and len(caught.value.message) < 600


def test_text() -> None:
    assert params.text({}, "user") is None
    assert params.text({"user": "  Alice@Contoso.com "}, "user") == "Alice@Contoso.com"
    for bad in ("", "   ", "a\x00b", "x" * 513):
        assert _field(lambda bad=bad: params.text({"user": bad}, "user")) == "user"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("2026-11-26T10:00:00.1234567Z", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-26T11:00:00+01:00", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("2026-11-26T11:00:00 01:00", datetime(2026, 11, 26, 10, tzinfo=UTC)),  # '+' decoded as a space
        ("2026-11-26T10:00:00", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
    ],
)
def test_timestamps(value: str, expected: datetime) -> None:
    parsed = params.timestamp({"from": value}, "from")
    assert parsed == expected and parsed is not None and parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-11-26T25:00:00Z", "1700000000", "", "2026-11-26T1"])
def test_bad_timestamps(value: str) -> None:
    assert _field(lambda: params.timestamp({"to": value}, "to")) == "to"


def test_limit() -> None:
    assert params.limit({}) == 100
    assert params.limit({"limit": "1"}) == 1
    assert params.limit({"limit": "100"}) == 100
    assert params.limit({"limit": " 42 "}) == 42
    for bad in ("0", "101", "-1", "1.5", "5.0", "1e2", "ten", "", "0x10", "99999999999999999999"):
        assert _field(lambda bad=bad: params.limit({"limit": bad})) == "limit"


def test_route_id() -> None:
    assert params.route_id({"id": "abc"}) == "abc"
    assert _field(lambda: params.route_id({})) == "id"
    assert _field(lambda: params.route_id({"id": " "})) == "id"
