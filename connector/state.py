"""Connector state in Table Storage: the connection and one record per subscription.

Models map to entities here and nowhere else. Every write is conditional on the ETag that was
read (or an insert that fails if the row exists), so concurrent writers never lose an update.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

CONNECTOR_PK = "connector"
CONNECTOR_RK = "azure"
SUBSCRIPTION_PK = "subscription"

ACTIVE_STATES = frozenset({"Enabled", "Warned", "PastDue"})

SubscriptionStatus = Literal["OK", "Error", "Inactive"]


class StaleWrite(Exception):
    """Someone else wrote the record since it was read; re-read and try again."""


class AlreadyExists(Exception):
    """An insert found the record already there."""


@dataclass
class ConnectorRecord:
    connected: bool
    connection_id: str
    connected_at: datetime | None
    connected_by: str | None  # the administrator's UPN (upn or preferred_username), for display
    attempted_at: datetime
    # Connector-level problem (sign-in, listing, no readable subscription); cleared by a good run.
    error: str | None = None
    disconnected_at: datetime | None = None
    disconnected_by: str | None = None
    last_fanout_at: datetime | None = None
    # The administrators' object ids (`oid`): immutable, unlike the UPN shown beside them.
    connected_by_id: str | None = None
    disconnected_by_id: str | None = None
    etag: str | None = field(default=None, compare=False)


@dataclass
class SubscriptionRecord:
    subscription_id: str
    display_name: str
    state: str
    discovered_at: datetime
    connection_id: str
    watermark: datetime
    visible: bool = True
    status: SubscriptionStatus = "OK"
    message: str | None = None
    failures: int = 0
    last_pulled_at: datetime | None = None
    last_success_at: datetime | None = None
    activities: int = 0
    # An unfinished window: [window_start, window_end] is being read, next_link is where to go on.
    window_start: datetime | None = None
    window_end: datetime | None = None
    next_link: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def active(self) -> bool:
        return self.visible and self.state in ACTIVE_STATES


DETACHED = ""  # the connection id of a subscription record after a disconnect: no pull may take it


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
                value.year, value.month, value.day, value.hour, value.minute, value.second,
                value.microsecond, tzinfo=UTC,
            )
        out[f.name] = value
    return out


def connector_from_entity(entity: dict[str, Any]) -> ConnectorRecord:
    return ConnectorRecord(**_values(entity, ConnectorRecord), etag=entity.metadata.get("etag"))  # type: ignore[attr-defined]


def subscription_from_entity(entity: dict[str, Any]) -> SubscriptionRecord:
    values = _values(entity, SubscriptionRecord)
    return SubscriptionRecord(
        subscription_id=entity["RowKey"],
        **values,
        etag=entity.metadata.get("etag"),  # type: ignore[attr-defined]
    )


class ConnectorStore:
    """Reads and writes connector state with optimistic concurrency."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    # The connection.
    def get_connector(self) -> ConnectorRecord | None:
        try:
            return connector_from_entity(self._table.get_entity(CONNECTOR_PK, CONNECTOR_RK))
        except ResourceNotFoundError:
            return None

    def insert_connector(self, record: ConnectorRecord) -> ConnectorRecord:
        try:
            meta = self._table.create_entity(_entity(CONNECTOR_PK, CONNECTOR_RK, record, _CONNECTOR_FIELDS))
        except ResourceExistsError as exc:
            raise AlreadyExists() from exc
        return replace(record, etag=meta.get("etag"))

    def replace_connector(self, record: ConnectorRecord) -> ConnectorRecord:
        return replace(record, etag=self._replace(CONNECTOR_PK, CONNECTOR_RK, record, _CONNECTOR_FIELDS))

    # Subscriptions.
    def list_subscriptions(self) -> list[SubscriptionRecord]:
        entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": SUBSCRIPTION_PK})
        return sorted((subscription_from_entity(e) for e in entities), key=lambda s: s.display_name.lower())

    def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        try:
            return subscription_from_entity(self._table.get_entity(SUBSCRIPTION_PK, subscription_id))
        except ResourceNotFoundError:
            return None

    def insert_subscription(self, record: SubscriptionRecord) -> SubscriptionRecord:
        entity = _entity(SUBSCRIPTION_PK, record.subscription_id, record, _SUBSCRIPTION_FIELDS)
        try:
            meta = self._table.create_entity(entity)
        except ResourceExistsError as exc:
            raise AlreadyExists() from exc
        return replace(record, etag=meta.get("etag"))

    def replace_subscription(self, record: SubscriptionRecord) -> SubscriptionRecord:
        etag = self._replace(SUBSCRIPTION_PK, record.subscription_id, record, _SUBSCRIPTION_FIELDS)
        return replace(record, etag=etag)

    def _replace(self, pk: str, rk: str, record: Any, names: list[str]) -> str | None:
        if record.etag is None:
            raise ValueError("a replace needs the ETag of the record that was read")
        try:
            meta = self._table.update_entity(
                _entity(pk, rk, record, names),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StaleWrite() from exc
        return meta.get("etag")
