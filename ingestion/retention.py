"""Retention, the daily maintenance: delete activities older than ACTIVITY_RETENTION_DAYS (accounts
are kept), and index by recency any account copy that predates the index."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from core.clock import Clock
from core.ports import ActivityWriter, SubscriptionState
from core.settings import Settings
from core.timefmt import wire_time
from ingestion.pull import ARM_RETENTION

logger = logging.getLogger(__name__)

BATCH_ROWS = 5_000
BUDGET_SECONDS = 240.0  # well inside the function timeout; the next run goes on


def run_retention(
    subscriptions: SubscriptionState,
    activities: ActivityWriter,
    clock: Clock,
    settings: Settings,
    *,
    budget_seconds: float = BUDGET_SECONDS,
) -> int:
    now = clock.now()
    cutoff = now - timedelta(days=settings.retention_days)
    # Never delete what a pull may still re-read (with a retention shorter than ARM's 90 days and
    # a backlog longer than it): the ledger rows keep a re-read event from being counted again.
    # Older than ARM keeps, nothing can be re-read.
    readable_from = now - ARM_RETENTION
    overlap = timedelta(seconds=settings.pull_overlap_seconds)
    for sub in subscriptions.list():
        if sub.active:
            earliest = sub.watermark - overlap
            if sub.window_start is not None:
                earliest = min(earliest, sub.window_start)
            cutoff = min(cutoff, max(earliest, readable_from))
    indexed = activities.index_accounts()
    if indexed:
        logger.info("Indexed %s accounts by recency that had not acted since the index was added", indexed)
    started = time.monotonic()
    deleted = 0
    while True:
        batch = activities.delete_older_than(cutoff, max_rows=BATCH_ROWS)
        deleted += batch
        if batch < BATCH_ROWS:
            logger.info("Retention deleted %s activities older than %s", deleted, wire_time(cutoff))
            break
        if time.monotonic() - started > budget_seconds:
            logger.warning(
                "Retention deleted %s activities older than %s and stopped for time; the next run goes on",
                deleted,
                wire_time(cutoff),
            )
            break
    return deleted
