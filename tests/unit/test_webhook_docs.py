"""The receiver's verification example in docs/policies.md, run: it accepts what the connector signs
and answers False (never raises) for missing, malformed or differently cased headers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policies.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 40
BODY = b'{"type":"alert","alert":{}}'


@pytest.fixture(scope="module")
def verify() -> Callable[..., bool]:
    text = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify(" in b]
    assert len(blocks) == 1
    scope: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/policies.md", "exec"), scope)
    return scope["verify"]


def _headers(timestamp: str | None = None) -> dict[str, str]:
    stamp = timestamp or str(int(time.time()))
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(SECRET, stamp, BODY)}


def test_it_accepts_what_the_connector_signs_whatever_the_header_case(verify: Callable[..., bool]) -> None:
    headers = _headers()
    assert verify(SECRET, headers, BODY)
    assert verify(SECRET, {k.lower(): v for k, v in headers.items()}, BODY)
    assert verify(SECRET, {k.upper(): v for k, v in headers.items()}, BODY)


@pytest.mark.parametrize(
    "change",
    [
        lambda h: {},
        lambda h: {TIMESTAMP_HEADER: h[TIMESTAMP_HEADER]},
        lambda h: {SIGNATURE_HEADER: h[SIGNATURE_HEADER]},
        lambda h: {**h, TIMESTAMP_HEADER: "soon"},
        lambda h: {**h, TIMESTAMP_HEADER: "-1"},
        lambda h: {**h, TIMESTAMP_HEADER: "\u0661\u0662"},
        lambda h: {**h, TIMESTAMP_HEADER: "9" * 5000},
        lambda h: {**h, SIGNATURE_HEADER: "sha256=\u00e9"},
        lambda h: {**h, SIGNATURE_HEADER: "sha256=" + "0" * 64},
    ],
)
def test_it_answers_false_for_missing_or_malformed_headers(
    verify: Callable[..., bool], change: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    assert verify(SECRET, change(_headers()), BODY) is False


def test_it_refuses_an_old_timestamp_and_another_body(verify: Callable[..., bool]) -> None:
    assert verify(SECRET, _headers(str(int(time.time()) - 301)), BODY) is False
    assert verify(SECRET, _headers(), BODY + b" ") is False
    assert verify("another secret", _headers(), BODY) is False
