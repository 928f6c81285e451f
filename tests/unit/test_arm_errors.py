"""ARM's error bodies, in every shape the Activity Log answers with, give the real message."""

from __future__ import annotations

import pytest

from core.arm import _arm_error

pytestmark = pytest.mark.unit

RETENTION = "The start time cannot be more than 90 days in the past."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # ARM's usual shape.
        (b'{"error": {"code": "AuthorizationFailed", "message": "No access."}}', ("AuthorizationFailed", "No access.")),
        # The Activity Log's 400s: the code and message at the top level.
        (b'{"code": "BadRequest", "message": "' + RETENTION.encode() + b'"}', ("BadRequest", RETENTION)),
        # Older answers, capitalized.
        (b'{"Code": "BadRequest", "Message": "' + RETENTION.encode() + b'"}', ("BadRequest", RETENTION)),
        (b'{"error": {"Code": "Conflict", "Message": "Busy."}}', ("Conflict", "Busy.")),
        (b'{"Error": {"code": "X", "message": "Nested, capital E."}}', ("X", "Nested, capital E.")),
        # Partial or odd bodies never crash and never lose what is there.
        (b'{"code": "BadRequest"}', ("BadRequest", "no message")),
        (b'{"message": "Only a message."}', (None, "Only a message.")),
        (b'{"error": {}}', (None, "no message")),
        (b'{"error": "flat"}', (None, "no message")),
        (b'{"code": 400, "message": ["not", "text"]}', (None, "no message")),
        (b'{"code": "  ", "message": "  "}', (None, "no message")),
        (b"{}", (None, "no message")),
        (b"[]", (None, "no message")),
        (b"null", (None, "no message")),
        # Not JSON: the start of the body is the message.
        (b"<html>502 Bad Gateway</html>", (None, "<html>502 Bad Gateway</html>")),
        (b"", (None, "no message")),
        (b"\xff\xfe not utf-8", (None, "\ufffd\ufffd not utf-8")),
        (b"x" * 500, (None, "x" * 200)),
    ],
)
def test_arm_error_shapes(body: bytes, expected: tuple[str | None, str]) -> None:
    assert _arm_error(body) == expected


def test_the_top_level_message_wins_over_a_missing_nested_error() -> None:
    body = b'{"error": null, "code": "BadRequest", "message": "' + RETENTION.encode() + b'"}'
    assert _arm_error(body) == ("BadRequest", RETENTION)
