"""The queue clients' retry waits, as the storage SDK computes them, are the ones the docs state."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.storage import queue_retry

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WAITS = (4, 10, 28, 82, 244)  # seconds before retry 1..5, each within 1 s (the jitter)


def test_the_waits_before_each_retry() -> None:
    policy = queue_retry()
    # The SDK counts a retry before it sleeps: the first wait is initial_backoff + increment_base ** 1.
    for count, wait in enumerate(WAITS, start=1):
        for _ in range(20):
            assert wait - 1 <= policy.get_backoff_time({"count": count}) <= wait + 1
    assert policy.total_retries == policy.connect_retries == policy.read_retries == policy.status_retries == 5


def test_the_docs_state_those_waits() -> None:
    stated = ", ".join(str(w) for w in WAITS[:-1]) + f" and {WAITS[-1]}"
    ingestion = " ".join((ROOT / "docs" / "ingestion.md").read_text(encoding="utf-8").split())
    assert f"waiting about {stated} seconds" in ingestion
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"after about {WAITS[0]} s, then {', '.join(str(w) for w in WAITS[1:-1])} and {WAITS[-1]} s" in readme
