"""A policy engine on the in-memory fakes, as the writer calls it: the unit tests' world."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.auth import Principal
from core.clock import FakeClock
from ingestion.models import Activity
from policies import service
from policies.engine import PolicyEngine
from tests.fakes import FakeActivityWriter, FakeAlertQueue, FakeAlertStore, FakePolicyStore

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SUB = "a0000000-0000-4000-8000-000000000000"
ADMIN = Principal(object_id="a1", upn="admin@contoso.com", name="Admin", tenant_id="t")


class World:
    def __init__(self, *, daily_limit: int = 100) -> None:
        self.clock = FakeClock(START - timedelta(hours=1))
        self.policies = FakePolicyStore()
        self.alerts = FakeAlertStore()
        self.queue = FakeAlertQueue()
        self.engine = self.new_engine(daily_limit)
        self.writer = FakeActivityWriter(evaluator=self.engine)

    def new_engine(self, daily_limit: int = 100) -> PolicyEngine:
        return PolicyEngine(
            self.policies, self.alerts, self.queue, self.clock, daily_limit=daily_limit, cache_seconds=0
        )

    def policy(self, **definition: Any) -> str:
        document = {"name": "p", "severity": "high", "kind": "singleActivity", **definition}
        record = service.create_policy(self.policies, self.engine, self.clock, ADMIN, document, webhook_secret="s3cret")
        return record.id

    def save(self, *acts: Activity) -> None:
        self.writer.save(SUB, [({}, a) for a in acts])
