"""Storing normalized activities and the accounts that act, exactly once per event.

`save` is safe to call again with the same events (a redelivered message, the overlap of the
next window, a crash half-way): rows are keyed by the event, and every count changes in the
same transaction as the ledger row that records which events it has counted.

Order of writes, so that a crash at any point is repaired by the retry:
1. which of the events the subscription ledger already holds (those are complete: skip them);
2. the `activities` and `activitiesbytime` rows of the others (idempotent upserts);
3. each account's ledger rows with its summary row (one transaction per chunk), then its listing
   copy together with the copy's recency index row (one transaction: see `_copy_account`);
   The account's summary row also carries the policies' burst counters of that principal
   (`policies.engine.PolicyEngine.burst_properties`), changed in the same transaction;
4. the policies' evaluation of these events (`policies.engine`, idempotent: alerts and counters
   keyed by policy and event), so that a crash before step 5 evaluates them again, never loses them
   (the policies that need nothing of the accounts are evaluated while step 3 runs, the others
   after it; both are finished before step 5);
5. the subscription's ledger rows with its summary row (the count and the activities per day),
   last: it marks the events complete.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from activities.layout import (
    ACCOUNT_COPY_PK,
    ACCOUNT_SUMMARY_RK,
    BATCH_BYTES,
    DAY_COUNTS,
    LEDGER_PREFIX,
    SUBSCRIPTION_SUMMARY_RK,
    UPN_ALIAS_PK,
    account_key,
    account_recent_key,
    activity_entity,
    add_day_counts,
    day_counts,
    day_partition,
    encode_day_counts,
    entity_size,
    entity_time,
    id_partition,
    inverted_time,
    last_seen_us,
    ledger_entity,
    ledger_row_key,
    listing_properties,
    merge_account,
    safe_key,
    time_index_entity,
)
from core.optimistic import StaleWrite, write_optimistically
from core.ports import ActivityEvaluator
from core.storage import (
    ACCOUNTS_TABLE,
    ACTIVITIES_TABLE,
    BATCH_LIMIT,
    BY_SUBSCRIPTION_TABLE,
    BY_TIME_TABLE,
    BY_USER_TABLE,
    ConflictRetries,
    Storage,
    create_or_replace_if_unchanged,
)
from ingestion.models import Activity

# Independent partitions are written side by side; clients are thread-safe.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store")
# The part of the policies' evaluation that runs while the accounts are counted (see `save`).
_EVALUATION = ThreadPoolExecutor(max_workers=4, thread_name_prefix="evaluate")


class LedgerContention(Exception):
    """A ledger partition kept changing under us; the message is retried by the host."""


@dataclass(frozen=True)
class SaveResult:
    received: int
    stored: int  # new to the subscription ledger in this call
    subscription_total: int
    # The subscription's activities per UTC day, as its summary row holds them (the stored form of
    # `activities.layout.encode_day_counts`; `day_counts` reads it as a map).
    subscription_days: str = ""


class ActivityStore:
    def __init__(self, storage: Storage, evaluator: ActivityEvaluator | None = None) -> None:
        self.evaluator = evaluator
        self.activities = storage.table(ACTIVITIES_TABLE)
        self.by_time = storage.table(BY_TIME_TABLE)
        self.by_subscription = storage.table(BY_SUBSCRIPTION_TABLE)
        self.by_user = storage.table(BY_USER_TABLE)
        self.accounts = storage.table(ACCOUNTS_TABLE)
        self._pool = _POOL

    # --- writing ----------------------------------------------------------------------------

    def save(self, subscription_id: str, items: Iterable[tuple[dict[str, Any], Activity]]) -> SaveResult:
        unique: dict[str, tuple[dict[str, Any], Activity]] = {}
        for raw, activity in items:
            unique.setdefault(ledger_row_key(activity), (raw, activity))
        sub_pk = safe_key(subscription_id)
        if not unique:
            return SaveResult(0, 0, *self.subscription_summary(subscription_id))
        known = self._existing(self.by_subscription, sub_pk, unique.keys())
        fresh = {rk: pair for rk, pair in unique.items() if rk not in known}
        if not fresh:
            return SaveResult(len(unique), 0, *self.subscription_summary(subscription_id))

        self._upsert_all(self.activities, [activity_entity(a, raw) for raw, a in fresh.values()])
        self._upsert_all(self.by_time, [time_index_entity(a) for _, a in fresh.values()])

        per_account: dict[str, list[Activity]] = defaultdict(list)
        for _, activity in fresh.values():
            key = account_key(activity.user)
            if key:
                per_account[key].append(activity)
        new_activities = [a for _, a in fresh.values()]
        evaluator = self.evaluator
        early = (
            _EVALUATION.submit(evaluator.evaluate, new_activities, {}, None, part="early")
            if evaluator is not None
            else None
        )  # the policies that need nothing of the accounts, while they are counted (step 4, in part)
        summaries = dict(self._pool.map(lambda item: self._count_for_account(*item), per_account.items()))
        if evaluator is not None and early is not None:
            first_seen = {k: entity_time(v["first_seen"]) for k, v in summaries.items() if v and v.get("first_seen")}
            accounts = {k: v for k, v in summaries.items() if v}
            evaluator.evaluate(new_activities, first_seen, accounts, part="late")
            early.result()  # raises what the early part raised: nothing is marked complete then

        def count(current: dict[str, Any] | None, new: set[str]) -> dict[str, Any]:
            total = int((current or {}).get("count", 0)) + len(new)
            days = add_day_counts(day_counts((current or {}).get(DAY_COUNTS)), (fresh[rk][1].timestamp for rk in new))
            return {
                "PartitionKey": sub_pk,
                "RowKey": SUBSCRIPTION_SUMMARY_RK,
                "count": total,
                "subscription_id": subscription_id,
                DAY_COUNTS: encode_day_counts(days),
            }

        summary = self._commit_ledger(
            self.by_subscription,
            sub_pk,
            {rk: ledger_entity(sub_pk, a) for rk, (_, a) in fresh.items()},
            SUBSCRIPTION_SUMMARY_RK,
            count,
            likely_new=True,  # `fresh` was checked against this ledger just above
        )
        if summary is None:
            return SaveResult(len(unique), len(fresh), *self.subscription_summary(subscription_id))
        return SaveResult(len(unique), len(fresh), int(summary.get("count", 0)), str(summary.get(DAY_COUNTS) or ""))

    def _count_for_account(self, key: str, acts: list[Activity]) -> tuple[str, dict[str, Any] | None]:
        """Count the account's activities (with the policies' burst counters, in the same transaction); its summary."""
        evaluator = self.evaluator

        def merge(current: dict[str, Any] | None, new: set[str]) -> dict[str, Any]:
            counted = [a for a in acts if ledger_row_key(a) in new]
            merged = merge_account(current, key, counted)
            if evaluator is not None:
                for name, value in evaluator.burst_properties(current, counted).items():
                    if value is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = value
            return merged

        entries = {ledger_row_key(a): ledger_entity(key, a) for a in acts}
        summary = self._commit_ledger(self.by_user, key, entries, ACCOUNT_SUMMARY_RK, merge, likely_new=True)
        if summary is None:
            return key, None
        self._copy_account(summary)
        return key, summary

    def subscription_count(self, subscription_id: str) -> int:
        return self.subscription_summary(subscription_id)[0]

    def subscription_summary(self, subscription_id: str) -> tuple[int, str]:
        """The subscription's count and its activities per day (stored form), from its summary row (one point read)."""
        try:
            row = self.by_subscription.get_entity(safe_key(subscription_id), SUBSCRIPTION_SUMMARY_RK)
        except ResourceNotFoundError:
            return 0, ""
        return int(row.get("count", 0)), str(row.get(DAY_COUNTS) or "")

    def _existing(self, table: TableClient, pk: str, row_keys: Iterable[str]) -> set[str]:
        wanted = set(row_keys)
        if not wanted:
            return set()
        rows = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi",
            parameters={"pk": pk, "lo": min(wanted), "hi": max(wanted)},
            select=["RowKey"],
        )
        return {row["RowKey"] for row in rows} & wanted

    def _upsert_all(self, table: TableClient, entities: list[dict[str, Any]]) -> None:
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entity in entities:
            by_partition[entity["PartitionKey"]].append(entity)
        batches = [batch for rows in by_partition.values() for batch in _batches(rows)]

        def send(batch: list[dict[str, Any]]) -> None:
            table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in batch])

        list(self._pool.map(send, batches))

    def _commit_ledger(
        self,
        table: TableClient,
        pk: str,
        entries: dict[str, dict[str, Any]],
        summary_rk: str,
        merge: Callable[[dict[str, Any] | None, set[str]], dict[str, Any]],
        *,
        likely_new: bool = False,
    ) -> dict[str, Any] | None:
        """Insert the ledger rows not yet present and update the summary in the same transaction.

        With `likely_new`, the first attempt skips the existence query (a conflict brings it back).
        """
        pending = dict(entries)
        summary: dict[str, Any] | None = None
        retries = ConflictRetries(f"ledger partition {pk}", LedgerContention)
        check = not likely_new
        while pending:
            if check:
                for rk in self._existing(table, pk, pending.keys()):
                    pending.pop(rk)
                if not pending:
                    break
            check = True
            try:
                current: dict[str, Any] | None = table.get_entity(pk, summary_rk)
            except ResourceNotFoundError:
                current = None
            chunk = sorted(pending)[: BATCH_LIMIT - 1]
            summary = merge(dict(current) if current is not None else None, set(chunk))
            operations = [("create", pending[rk]) for rk in chunk]
            operations.append(create_or_replace_if_unchanged(summary, current))
            if not retries.submit(table, operations):
                summary = None
                continue
            for rk in chunk:
                pending.pop(rk)
        if summary is None:
            try:
                summary = dict(table.get_entity(pk, summary_rk))
            except ResourceNotFoundError:
                return None
        return summary

    def _copy_account(self, summary: dict[str, Any]) -> None:
        """Keep the listing copy at the newest version of the summary (never older), with its index row.

        The copy (RowKey = account key) and its recency index row (RowKey = `account_recent_key`
        of its lastSeen) share the `account` partition, so they change in one transaction: the
        copy, conditional on the ETag read, moves to the new version and names its new index
        row (`index_rk`); the new index row is written; the old one, when lastSeen moved, is
        deleted. Invariant: every copy has exactly one index row, the one it names, holding the
        copy's properties. A crash leaves either the old pair or the new one, never a listing
        without the account or with it twice; a redelivery finds the copy at that version and
        writes nothing; of two concurrent saves the one that read an older ETag re-reads, and
        stops if the copy is already newer.
        """
        key = summary["PartitionKey"]
        version = int(summary.get("version", 0))
        old_row_gone = [False]

        def attempt() -> None:
            try:
                current: dict[str, Any] | None = self.accounts.get_entity(ACCOUNT_COPY_PK, key)
            except ResourceNotFoundError:
                current = None
            newer = current is not None and int(current.get("version", 0)) >= version
            if current is not None and newer and current.get("index_rk"):
                return  # a redelivery, or a newer save came first
            # A copy from before the index existed is indexed as it is (never moved backwards).
            target = listing_properties(dict(current) if current is not None and newer else summary)
            rk = account_recent_key(last_seen_us(target), key)
            copy = {**target, "PartitionKey": ACCOUNT_COPY_PK, "RowKey": key, "index_rk": rk}
            index_row = {**target, "PartitionKey": ACCOUNT_COPY_PK, "RowKey": rk, "account_key": key}
            index_row.pop("index_rk", None)
            operations: list[Any] = [
                create_or_replace_if_unchanged(copy, current),
                ("upsert", index_row, {"mode": UpdateMode.REPLACE}),
            ]
            old_rk = current.get("index_rk") if current is not None else None
            if old_rk and old_rk != rk and not old_row_gone[0]:
                operations.append(("delete", {"PartitionKey": ACCOUNT_COPY_PK, "RowKey": old_rk}))
            try:
                self.accounts.submit_transaction(operations)
            except TableTransactionError as exc:
                code = getattr(exc, "error_code", None)
                code = getattr(code, "value", code)
                if code == "ResourceNotFound" and len(operations) == 3 and exc.index == 2:
                    old_row_gone[0] = True  # breaks the invariant, but must not wedge the account
                    raise StaleWrite() from exc
                if code in ("EntityAlreadyExists", "UpdateConditionNotSatisfied", "ResourceNotFound"):
                    raise StaleWrite() from exc  # another save came first: read again and decide again
                raise

        write_optimistically(attempt, what=f"The account {key}", jitter=True)
        upn = summary.get("upn")
        if upn:  # every time: idempotent, and an interrupted earlier write is repaired
            self.accounts.upsert_entity(
                {"PartitionKey": UPN_ALIAS_PK, "RowKey": safe_key(upn), "account_key": key},
                mode=UpdateMode.REPLACE,
            )

    def index_accounts(self, *, max_rows: int = 5_000) -> int:
        """Index the account copies written before the recency index existed; the count indexed.

        Run by the daily maintenance (retention): an account that acts is indexed by its save
        anyway, this catches the ones that have not acted since. Idempotent; stops after `max_rows`.
        """
        copies = self.accounts.query_entities(
            "PartitionKey eq @pk and RowKey lt @index", parameters={"pk": ACCOUNT_COPY_PK, "index": "~"}
        )
        indexed = 0
        for row in copies:
            if row.get("index_rk"):
                continue
            self._copy_account({**row, "PartitionKey": row["RowKey"]})  # as the summary it copies
            indexed += 1
            if indexed >= max_rows:
                break
        return indexed

    # --- retention ----------------------------------------------------------------------------

    def delete_older_than(self, cutoff: datetime, *, max_rows: int = 20_000) -> int:
        """Delete activities whose timestamp is before `cutoff` (by whole UTC days), accounts untouched.

        Index rows go last so that an interrupted run is finished by the next one. Returns the
        number of activities deleted; stops after `max_rows`.
        """
        deleted = 0
        select = ["PartitionKey", "RowKey", "id", "subscription_id", "user_key"]
        day = day_partition(cutoff)
        # Whole days before the cutoff's day (older days sort after it), then the older part of that day.
        older_days = self.by_time.query_entities("PartitionKey gt @pk", parameters={"pk": day}, select=select)
        same_day = self.by_time.query_entities(
            "PartitionKey eq @pk and RowKey gt @rk", parameters={"pk": day, "rk": inverted_time(cutoff)}, select=select
        )
        chunk: list[dict[str, Any]] = []
        for row in itertools.chain(same_day, older_days):
            chunk.append(row)
            if len(chunk) >= 500:
                deleted += self._delete_rows(chunk)
                chunk = []
            if deleted >= max_rows:
                break
        if chunk:
            deleted += self._delete_rows(chunk)
        return deleted

    def _delete_rows(self, index_rows: list[dict[str, Any]]) -> int:
        targets: list[tuple[TableClient, str, str]] = []
        for row in index_rows:
            targets.append((self.activities, id_partition(row["id"]), safe_key(row["id"])))
            ledger_rk = LEDGER_PREFIX + row["RowKey"]
            targets.append((self.by_subscription, safe_key(row["subscription_id"]), ledger_rk))
            if row.get("user_key"):
                targets.append((self.by_user, row["user_key"], ledger_rk))
        self._delete_all(targets)
        self._delete_all([(self.by_time, row["PartitionKey"], row["RowKey"]) for row in index_rows])
        return len(index_rows)

    def _delete_all(self, targets: list[tuple[TableClient, str, str]]) -> None:
        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        tables: dict[str, TableClient] = {}
        for table, pk, rk in targets:
            tables[table.table_name] = table
            grouped[(table.table_name, pk)].append(rk)
        for (name, pk), rks in grouped.items():
            table = tables[name]
            for start in range(0, len(rks), BATCH_LIMIT):
                part = rks[start : start + BATCH_LIMIT]
                try:
                    table.submit_transaction([("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in part])
                except TableTransactionError:
                    # Some row was already gone (an earlier, interrupted run): delete one by one.
                    for rk in part:
                        table.delete_entity(pk, rk)


def _batches(rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = entity_size(row)
        if batch and (len(batch) >= BATCH_LIMIT or size + row_size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch
