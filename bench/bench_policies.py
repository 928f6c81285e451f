"""Benchmark of policy evaluation's cost to ingestion, side by side in one run, against a real Azurite.

The same pages of realistic events (`bench.bench_parse.generate_events`: people, service principals,
managed identities and Azure itself; role assignments, key listings, deletions, failures...) are
stored by `ActivityStore.save` twice per round, into two sets of tables: once with the policy
engine and no enabled policy, once with 20 enabled policies (the eight templates, the IP-range one
given the organisation's ranges, and twelve more of the kinds admins write). Rounds alternate the
two so that the machine's load hits both alike; each round stores fresh events. The ratio of the
medians is what evaluation costs the pull's storing (the ARM reads, 0.5-2 s a page, are left out:
they would hide it).

Run: `python -m bench.bench_policies [--pages N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from activities.writer import ActivityStore
from bench.bench_parse import activity_pages
from core.auth import Principal
from core.clock import FakeClock
from core.storage import Storage
from localdev.azurite import Azurite
from policies import service
from policies.engine import PolicyEngine
from policies.notify import StorageAlertQueue
from policies.store import TableAlertStore, TablePolicyStore
from policies.templates import TEMPLATES

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ADMIN = Principal(object_id="bench", upn="bench@contoso.com", name="Bench", tenant_id="t")
ORG_RANGES = ["203.0.113.0/24", "198.51.100.0/24", "10.0.0.0/8"]
PROD_GROUPS = [f"rg-prod-{n}" for n in range(20)]

MORE_POLICIES: list[dict[str, Any]] = [
    {"name": "Deletes in production", "severity": "high", "kind": "singleActivity",
     "filter": {"actionTypes": ["delete"], "resourceGroups": PROD_GROUPS, "statuses": ["Succeeded"]}},
    {"name": "Key vault changes", "severity": "medium", "kind": "singleActivity",
     "filter": {"actions": ["Microsoft.KeyVault/*"], "statuses": ["Succeeded"]}},
    {"name": "Security rules changed", "severity": "medium", "kind": "singleActivity",
     "filter": {"actions": ["Microsoft.Network/networkSecurityGroups/securityRules/*"], "statuses": ["Succeeded"],
                "resourceGroups": PROD_GROUPS}},
    {"name": "Deployments by service principals", "severity": "low", "kind": "repeatedActivity",
     "filter": {"userTypes": ["servicePrincipal"], "actions": ["Microsoft.Resources/deployments/write"]},
     "repeated": {"count": 10, "windowMinutes": 5}},
    {"name": "Failed operations by people", "severity": "low", "kind": "repeatedActivity",
     "filter": {"userTypes": ["user"], "statuses": ["Failed"]}, "repeated": {"count": 5, "windowMinutes": 10}},
    {"name": "Resource group deleted", "severity": "high", "kind": "singleActivity",
     "filter": {"actions": ["Microsoft.Resources/subscriptions/resourceGroups/delete"], "statuses": ["Succeeded"],
                "resourceGroups": PROD_GROUPS}},
    {"name": "VM deletions", "severity": "medium", "kind": "repeatedActivity",
     "filter": {"actions": ["Microsoft.Compute/virtualMachines/delete"]},
     "repeated": {"count": 5, "windowMinutes": 10, "sameAction": True}},
    {"name": "Role assignments by managed identities", "severity": "high", "kind": "singleActivity",
     "filter": {"userTypes": ["managedIdentity"], "actions": ["Microsoft.Authorization/roleAssignments/*"]}},
    {"name": "Keys listed from outside", "severity": "high", "kind": "singleActivity",
     "filter": {"actions": ["*/listKeys/action"], "ipNotInRanges": ORG_RANGES}},
    {"name": "Web app restarts", "severity": "low", "kind": "repeatedActivity",
     "filter": {"actions": ["Microsoft.Web/sites/restart/action"]}, "repeated": {"count": 20, "windowMinutes": 10}},
    {"name": "VM starts", "severity": "low", "kind": "repeatedActivity",
     "filter": {"actions": ["Microsoft.Compute/virtualMachines/start/action"], "statuses": ["Succeeded"]},
     "repeated": {"count": 20, "windowMinutes": 10, "sameAction": True}},
    {"name": "Errors in production", "severity": "medium", "kind": "repeatedActivity",
     "filter": {"categories": ["Administrative"], "statuses": ["Failed"], "resourceGroups": PROD_GROUPS},
     "repeated": {"count": 10, "windowMinutes": 15}},
]  # fmt: skip


def policies() -> list[dict[str, Any]]:
    """The 20 enabled policies: every template (the IP one given the organisation's ranges) and twelve more."""
    out = []
    for template in TEMPLATES:
        document: dict[str, Any] = {"templateId": template.id, "enabled": True}
        if template.id == "outside-ip-ranges":
            document["filter"] = {"userTypes": ["user"], "ipNotInRanges": ORG_RANGES}
        out.append(document)
    out.extend(MORE_POLICIES)
    assert len(out) == 20
    return out


def _storage(connection_string: str) -> Storage:
    storage = Storage(
        TableServiceClient.from_connection_string(connection_string),
        QueueServiceClient.from_connection_string(connection_string),
        table_prefix="b" + uuid.uuid4().hex[:12],
        pull_queue="bench-" + uuid.uuid4().hex[:8],
        alert_queue="bench-alert-" + uuid.uuid4().hex[:8],
    )
    storage.ensure()
    return storage


def _store(
    connection_string: str, clock: FakeClock, definitions: list[dict[str, Any]]
) -> tuple[ActivityStore, TableAlertStore, TablePolicyStore]:
    storage = _storage(connection_string)
    store = TablePolicyStore(storage)
    for document in definitions:
        service.create_policy(store, None, clock, ADMIN, document, webhook_secret=None)
    alerts = TableAlertStore(storage, clock=clock)
    queue = StorageAlertQueue(storage.alert_queue, storage.alert_poison_queue)
    engine = PolicyEngine(store, alerts, queue, clock, daily_limit=100)
    return ActivityStore(storage, evaluator=engine), alerts, store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=5, help="pages of 200 events per round (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each side once per round (default 5)")
    args = parser.parse_args(argv)
    clock = FakeClock(NOW - timedelta(days=2))  # the policies exist before the events happen
    timings: dict[str, list[float]] = {"0 policies": [], "20 policies": []}
    with Azurite() as azurite:
        bare, _, _ = _store(azurite.connection_string, clock, [])
        busy, alerts, stored_policies = _store(azurite.connection_string, clock, policies())
        for round_number in range(args.rounds + 1):  # round 0 warms both up and is not counted
            pages = activity_pages(args.pages, ingested_at=NOW, first=round_number * args.pages)  # fresh each round
            sub = pages[0][0][1].subscription_id
            order = [("0 policies", bare), ("20 policies", busy)]
            if round_number % 2:
                order.reverse()
            for name, store in order:
                started = time.perf_counter()
                for page in pages:
                    store.save(sub, page)
                if round_number:
                    timings[name].append(time.perf_counter() - started)
        raised = sum(1 for _ in alerts.alerts.list_entities(select=["RowKey"]))
        paused = [p.definition.name for p in stored_policies.list() if p.state == "paused"]
    events = args.pages * 200
    print(f"{events} events a round in {args.pages} pages of 200, {args.rounds} rounds, Azurite in memory")
    print(f"{'policies':12} {'median s':>9} {'events/s':>9}  rounds (s)")
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, seconds in medians.items():
        rounds = " ".join(f"{value:.1f}" for value in timings[name])
        print(f"{name:12} {seconds:9.2f} {events / seconds:9.0f}  {rounds}")
    ratio = medians["20 policies"] / medians["0 policies"]
    print(f"20 / 0 policies time: {ratio:.3f}x (throughput {1 / ratio:.1%} of without policies)")
    print(f"alerts raised with 20 policies: {raised}; paused at the daily limit (100): {paused or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
