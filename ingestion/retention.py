"""Retention: delete activities older than ACTIVITY_RETENTION_DAYS; accounts are kept."""

from __future__ import annotations

import logging
from datetime import timedelta

from core.runtime import Runtime
from ingestion.store import ActivityStore

logger = logging.getLogger(__name__)


def run_retention(runtime: Runtime, *, max_rows: int = 50_000) -> int:
    cutoff = runtime.clock.now() - timedelta(days=runtime.settings.retention_days)
    deleted = ActivityStore(runtime.storage).delete_older_than(cutoff, max_rows=max_rows)
    if deleted >= max_rows:
        logger.warning("Retention deleted %s activities older than %s; the rest goes on the next run",
                       deleted, cutoff.isoformat())
    else:
        logger.info("Retention deleted %s activities older than %s", deleted, cutoff.isoformat())
    return deleted
