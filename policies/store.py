"""Table Storage adapters of the policy ports: policies, alerts with their index copies, counters.

The layout is `policies.layout`'s. Conditional writes raise `StaleWrite` / `AlreadyExists` as the
other state adapters do; the counters' transaction is the writer's ledger pattern.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from activities.layout import id_partition
from activities.reader import MAX_STORAGE_REQUESTS, Page, run_plan
from activities.tokens import ContinuationSigner, LazySigner, signer_source
from activities.writer import LedgerContention
from core.clock import Clock
from core.optimistic import AlreadyExists, StaleWrite
from core.ports import Decide
from core.storage import (
    ALERTS_BY_POLICY_TABLE,
    ALERTS_BY_TIME_TABLE,
    ALERTS_BY_USER_TABLE,
    ALERTS_TABLE,
    BATCH_LIMIT,
    CONNECTOR_TABLE,
    MAX_CONFLICT_RETRIES,
    POLICIES_TABLE,
    POLICY_COUNTERS_TABLE,
    ConflictRetries,
    Storage,
    create_or_replace_if_unchanged,
    is_conflict,
    replace_if_unchanged,
)
from policies.alert_queries import ALERTS_KIND, AlertQuery, plan_alerts
from policies.layout import (
    LEDGER_PREFIX,
    POLICY_PK,
    SUMMARY_RK,
    alert_entity,
    alert_from_entity,
    alert_index_keys,
    alert_properties,
    alert_row_key,
    policy_entity,
    policy_from_entity,
)
from policies.models import MAX_ALERT_ACTIVITIES, Alert, PolicyRecord

_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="alerts")


class CounterContention(LedgerContention):
    """A counter partition kept changing under us; the message is retried by the host (a ledger contention)."""


class TablePolicyStore:
    def __init__(self, storage: Storage) -> None:
        self.table = storage.table(POLICIES_TABLE)

    def list(self) -> list[PolicyRecord]:
        rows = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": POLICY_PK})
        records = [policy_from_entity(row) for row in rows]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def get(self, policy_id: str) -> PolicyRecord | None:
        try:
            return policy_from_entity(self.table.get_entity(POLICY_PK, policy_id))
        except ResourceNotFoundError:
            return None

    def insert(self, record: PolicyRecord) -> PolicyRecord:
        try:
            meta = self.table.create_entity(policy_entity(record))
        except ResourceExistsError as exc:
            raise AlreadyExists() from exc
        return replace(record, etag=meta.get("etag"))

    def replace(self, record: PolicyRecord) -> PolicyRecord:
        if record.etag is None:
            raise ValueError("a replace needs the ETag of the record that was read")
        meta = replace_if_unchanged(self.table, policy_entity(record), record.etag)
        return replace(record, etag=meta.get("etag"))

    def delete(self, policy_id: str) -> bool:
        try:
            self.table.get_entity(POLICY_PK, policy_id, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        self.table.delete_entity(POLICY_PK, policy_id)
        return True


class TableAlertStore:
    def __init__(
        self,
        storage: Storage,
        *,
        clock: Clock,
        signer: ContinuationSigner | None = None,
        max_requests: int = MAX_STORAGE_REQUESTS,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self.alerts = storage.table(ALERTS_TABLE)
        self.counters = storage.table(POLICY_COUNTERS_TABLE)
        self._index = {
            "time": storage.table(ALERTS_BY_TIME_TABLE),
            "policy": storage.table(ALERTS_BY_POLICY_TABLE),
            "user": storage.table(ALERTS_BY_USER_TABLE),
        }
        self._signer_factory = signer_source(signer, storage.table(CONNECTOR_TABLE))
        self._max_requests = max_requests

    # counters -------------------------------------------------------------------------------

    def count_once(
        self, partition: str, keys: Sequence[str], decide: Decide
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        wanted = {LEDGER_PREFIX + k: k for k in keys}
        found: dict[str, dict[str, Any]] = {}
        summary: dict[str, Any] | None = None
        retries = ConflictRetries(f"counter partition {partition}", CounterContention)
        while True:
            try:
                current: dict[str, Any] | None = self.counters.get_entity(partition, SUMMARY_RK)
            except ResourceNotFoundError:
                current = None
            if current is not None:  # ledger rows are only ever written with the summary
                found.update(self._ledger_rows(partition, [rk for rk in wanted if wanted[rk] not in found]))
            pending = sorted(k for k in wanted.values() if k not in found)
            if not pending:
                summary = dict(current) if current is not None else summary
                return summary, found
            chunk = pending[: BATCH_LIMIT - 1]
            rows, new_summary = decide(dict(current) if current is not None else None, chunk)
            entity = {**new_summary, "PartitionKey": partition, "RowKey": SUMMARY_RK}
            operations = [
                ("create", {**rows[k], "PartitionKey": partition, "RowKey": LEDGER_PREFIX + k}) for k in chunk
            ]
            operations.append(create_or_replace_if_unchanged(entity, current))
            if not retries.submit(self.counters, operations):
                continue
            for key in chunk:
                found[key] = rows[key]
            summary = entity

    def _ledger_rows(self, partition: str, row_keys: list[str]) -> dict[str, dict[str, Any]]:
        if not row_keys:
            return {}
        rows = self.counters.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi",
            parameters={"pk": partition, "lo": min(row_keys), "hi": max(row_keys)},
        )
        wanted = set(row_keys)
        return {row["RowKey"][len(LEDGER_PREFIX) :]: dict(row) for row in rows if row["RowKey"] in wanted}

    # alerts ---------------------------------------------------------------------------------

    def put_alert(self, alert: Alert) -> tuple[Alert, bool]:
        return self.put_alerts([alert])[0]

    def put_alerts(self, alerts: Sequence[Alert]) -> list[tuple[Alert, bool]]:
        """Create each alert once (a batch per partition; one by one when some exist), then the copies.

        An alert that exists already is kept, a growing burst's new activities merged in; the
        index copies are then written from what is stored, a batch per index partition.
        """
        unique = list({a.id: a for a in alerts}.values())
        results: dict[str, tuple[Alert, bool]] = {}
        groups: dict[str, list[Alert]] = defaultdict(list)
        for alert in unique:
            groups[id_partition(alert.id)].append(alert)

        def create(group: list[Alert]) -> list[tuple[Alert, bool]]:
            done: list[tuple[Alert, bool]] = []
            for start in range(0, len(group), BATCH_LIMIT):
                chunk = group[start : start + BATCH_LIMIT]
                try:
                    self.alerts.submit_transaction([("create", alert_entity(a)) for a in chunk])
                    done.extend((a, True) for a in chunk)
                except TableTransactionError as exc:
                    if not is_conflict(exc):
                        raise
                    # Some exist (a re-evaluation, a growing burst): one by one.
                    done.extend(self._create_or_merge(a) for a in chunk)
            return done

        for done in _POOL.map(create, groups.values()):
            results.update((stored.id, (stored, created)) for stored, created in done)
        self._write_index([stored for stored, _ in results.values()])
        return [results[a.id] for a in alerts]

    def _create_or_merge(self, alert: Alert) -> tuple[Alert, bool]:
        try:
            self.alerts.create_entity(alert_entity(alert))
            return alert, True
        except ResourceExistsError:
            return self._merge_activities(alert), False

    def _merge_activities(self, alert: Alert) -> Alert:
        """A stored alert, with a growing burst's new activities merged in (status and time kept)."""
        for _ in range(MAX_CONFLICT_RETRIES):
            current = self.get_alert(alert.id)
            if current is None:  # deleted in between: write it again
                try:
                    self.alerts.create_entity(alert_entity(alert))
                    return alert
                except ResourceExistsError:
                    continue
            ids = list(current.activity_ids)
            ids.extend(i for i in alert.activity_ids if i not in set(ids))
            count = max(current.activity_count, alert.activity_count)
            last = max(current.last_activity_at, alert.last_activity_at)
            if len(ids) == len(current.activity_ids) and count == current.activity_count:
                return current
            merged = replace(
                current,
                activity_ids=tuple(ids[:MAX_ALERT_ACTIVITIES]),
                activity_count=count,
                last_activity_at=last,
                title=alert.title,
            )
            try:
                return self.replace_alert(merged, index=False)
            except StaleWrite:
                continue
        raise CounterContention(f"alert {alert.id} kept changing")

    def _write_index(self, alerts: Sequence[Alert]) -> None:
        """The alerts' copies in the index tables (upserts from the stored alerts), a batch per partition."""
        rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for alert in alerts:
            rk = alert_row_key(alert)
            props = alert_properties(alert)
            for name, pks in alert_index_keys(alert).items():
                for pk in pks:
                    rows[(name, pk)].append({**props, "PartitionKey": pk, "RowKey": rk})
        batches = [
            (self._index[name], chunk[start : start + BATCH_LIMIT])
            for (name, _), chunk in rows.items()
            for start in range(0, len(chunk), BATCH_LIMIT)
        ]

        def upsert(batch: tuple[TableClient, list[dict[str, Any]]]) -> None:
            table, entities = batch
            table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in entities])

        list(_POOL.map(upsert, batches))

    def get_alert(self, alert_id: str) -> Alert | None:
        try:
            return alert_from_entity(self.alerts.get_entity(id_partition(alert_id), alert_id.lower()))
        except ResourceNotFoundError:
            return None

    def replace_alert(self, alert: Alert, *, index: bool = True) -> Alert:
        """Replace the alert if unchanged since read (StaleWrite otherwise), then its index copies."""
        if alert.etag is None:
            raise ValueError("a replace needs the ETag of the alert that was read")
        meta = replace_if_unchanged(self.alerts, alert_entity(alert), alert.etag)
        stored = replace(alert, etag=meta.get("etag"))
        if index:
            self._write_index([stored])
        return stored

    def search(self, query: AlertQuery, limit: int, continuation: str | None, *, caller: str) -> Page:
        signer = LazySigner(self._signer_factory, caller=caller, now=self._clock.now)
        query_hash = query.fingerprint()
        position = signer.open(continuation, ALERTS_KIND, query_hash) if continuation else None
        plan = plan_alerts(query)
        if plan is None:
            return Page(items=[], continuation=None)
        found = run_plan(self._storage.table(plan.table), plan, limit, position, max_requests=self._max_requests)
        items = [alert_from_entity(row).to_api() for row in found.rows]
        token = signer.issue(ALERTS_KIND, query_hash, found.position) if found.position else None
        return Page(items=items, continuation=token, requests=found.requests, plan=plan)
