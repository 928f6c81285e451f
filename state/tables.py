"""Connector and subscription records in Table Storage (the `connector` table).

Records map to entities here and nowhere else. Every write is conditional on the ETag that was
read (or an insert that fails if the row exists), so concurrent writers never lose an update:
a lost race is `StaleWrite` / `AlreadyExists`, which `core.optimistic.write_optimistically` retries.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import MISSING, fields, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from core.optimistic import AlreadyExists
from core.storage import BATCH_LIMIT, replace_if_unchanged
from state.records import ConnectorRecord, SubscriptionRecord

CONNECTOR_PK = "connector"
CONNECTOR_RK = "azure"
SUBSCRIPTION_PK = "subscription"

R = TypeVar("R", ConnectorRecord, SubscriptionRecord)

_CONNECTOR_FIELDS = [f.name for f in fields(ConnectorRecord) if f.name != "etag"]
_SUBSCRIPTION_FIELDS = [f.name for f in fields(SubscriptionRecord) if f.name not in ("etag", "subscription_id")]


def _entity(pk: str, rk: str, record: Any, names: list[str]) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk}
    for name in names:
        value = getattr(record, name)
        if value is not None:
            entity[name] = value
    return entity


def _values(entity: dict[str, Any], record_type: type) -> dict[str, Any]:
    """Field values from an entity; a property the entity lacks is the field's default, else None."""
    out: dict[str, Any] = {}
    for f in fields(record_type):
        if f.name in ("etag", "subscription_id"):
            continue
        if f.name not in entity:
            if f.default is MISSING and f.default_factory is MISSING:
                out[f.name] = None
            continue
        value = entity[f.name]
        if isinstance(value, datetime):
            value = datetime(
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
                tzinfo=UTC,
            )
        out[f.name] = value
    return out


def connector_from_entity(entity: dict[str, Any]) -> ConnectorRecord:
    return ConnectorRecord(**_values(entity, ConnectorRecord), etag=entity.metadata.get("etag"))  # type: ignore[attr-defined]


def subscription_entity(record: SubscriptionRecord) -> dict[str, Any]:
    """The entity a subscription record is stored as (what `load_subscriptions` writes)."""
    return _entity(SUBSCRIPTION_PK, record.subscription_id, record, _SUBSCRIPTION_FIELDS)


def load_subscriptions(
    table: TableClient, records: Iterable[SubscriptionRecord], *, pool: Executor | None = None
) -> None:
    """Upsert subscription records in transactions of 100, side by side on `pool` if given.

    For setting up benchmarks and tests only: the app writes each record conditionally.
    """
    rows = [subscription_entity(record) for record in records]
    batches = [rows[start : start + BATCH_LIMIT] for start in range(0, len(rows), BATCH_LIMIT)]

    def send(batch: list[dict[str, Any]]) -> None:
        table.submit_transaction([("upsert", row) for row in batch])

    list((pool.map if pool is not None else map)(send, batches))


def subscription_from_entity(entity: dict[str, Any]) -> SubscriptionRecord:
    values = _values(entity, SubscriptionRecord)
    return SubscriptionRecord(
        subscription_id=entity["RowKey"],
        **values,
        etag=entity.metadata.get("etag"),  # type: ignore[attr-defined]
    )


class _Rows:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def _insert(self, pk: str, rk: str, record: R, names: list[str]) -> R:
        try:
            meta = self._table.create_entity(_entity(pk, rk, record, names))
        except ResourceExistsError as exc:
            raise AlreadyExists() from exc
        return replace(record, etag=meta.get("etag"))

    def _replace(self, pk: str, rk: str, record: R, names: list[str]) -> R:
        if record.etag is None:
            raise ValueError("a replace needs the ETag of the record that was read")
        meta = replace_if_unchanged(self._table, _entity(pk, rk, record, names), record.etag)
        return replace(record, etag=meta.get("etag"))


class TableConnectorState(_Rows):
    """The connector record (one row)."""

    def get(self) -> ConnectorRecord | None:
        try:
            return connector_from_entity(self._table.get_entity(CONNECTOR_PK, CONNECTOR_RK))
        except ResourceNotFoundError:
            return None

    def insert(self, record: ConnectorRecord) -> ConnectorRecord:
        return self._insert(CONNECTOR_PK, CONNECTOR_RK, record, _CONNECTOR_FIELDS)

    def replace(self, record: ConnectorRecord) -> ConnectorRecord:
        return self._replace(CONNECTOR_PK, CONNECTOR_RK, record, _CONNECTOR_FIELDS)


class TableSubscriptionState(_Rows):
    """The subscription records (one row each, in one partition)."""

    def list(self) -> list[SubscriptionRecord]:
        entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": SUBSCRIPTION_PK})
        return sorted((subscription_from_entity(e) for e in entities), key=lambda s: s.display_name.lower())

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        try:
            return subscription_from_entity(self._table.get_entity(SUBSCRIPTION_PK, subscription_id))
        except ResourceNotFoundError:
            return None

    def insert(self, record: SubscriptionRecord) -> SubscriptionRecord:
        return self._insert(SUBSCRIPTION_PK, record.subscription_id, record, _SUBSCRIPTION_FIELDS)

    def replace(self, record: SubscriptionRecord) -> SubscriptionRecord:
        return self._replace(SUBSCRIPTION_PK, record.subscription_id, record, _SUBSCRIPTION_FIELDS)
