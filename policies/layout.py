"""Where policies, alerts and their counters meet Table Storage: keys, tables, entity <-> record.

| table | PartitionKey | RowKey | holds |
|---|---|---|---|
| policies | `policy` | policy id | the policy: definition (JSON), version, pause, who and when |
| alerts | first hex digit of the alert id | alert id | the alert (by id): the record of truth |
| alertsbytime | inverted UTC day `d…` of the alert's time | inverted time `_` alert id | a copy, newest first |
| alertsbypolicy | policy id | inverted time `_` alert id | a copy per policy |
| alertsbyuser | account key, and lower-cased UPN | inverted time `_` alert id | a copy per user |
| policycounters | `d-<policy>-v<version>-<yyyymmdd>` | `e` + alert id, and `summary` | the daily alert count |

Alert ids are derived from what raised them (`alert_id`), and an alert's time is that of its
first activity: a re-evaluated activity lands on the same rows. The copies in the three index
tables are rewritten from the `alerts` row whenever it changes (creation, a burst growing, a PATCH,
delivery): the `alerts` row is written first, so a crash between leaves an index copy one change
behind until the retry (or the next change) rewrites it. Counter partitions keep a ledger of what
they counted beside a `summary` row, changed together in one transaction, as the activities' are.
The burst counters of repeated-activity policies are not here: they live in each principal's
account summary row (`activitiesbyuser`, properties `pb_…`, see `policies.engine`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from activities.layout import day_partition, entity_time, id_partition, inverted_time, safe_key
from policies.models import Alert, AlertUser, PolicyDefinition, PolicyRecord

POLICY_PK = "policy"
SUMMARY_RK = "summary"
LEDGER_PREFIX = "e"


def _hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def alert_id(policy_id: str, *parts: str) -> str:
    """The deterministic id of the alert `policy_id` raises for what `parts` name (an activity, a burst)."""
    return _hash("alert", policy_id.lower(), *(p.lower() for p in parts))[:32]


def alert_row_key(alert: Alert) -> str:
    return f"{inverted_time(alert.first_activity_at)}_{alert.id}"


def daily_partition(policy: PolicyRecord, at: datetime, *, day: str = "") -> str:
    """The partition of the policy's daily count on the UTC day of `at` (or `day`, YYYYMMDD, when given)."""
    return f"d-{policy.id}-v{policy.version}-{day or f'{at.astimezone(UTC):%Y%m%d}'}"


# --- policies -------------------------------------------------------------------------------------


def policy_entity(record: PolicyRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": POLICY_PK,
        "RowKey": record.id,
        "definition": json.dumps(record.definition.to_json(), separators=(",", ":")),
        "enabled": record.definition.enabled,
        "created_at": record.created_at,
        "effective_from": record.effective_from,
        "version": record.version,
    }
    for name in ("created_by", "updated_by", "paused_message"):
        value = getattr(record, name)
        if value is not None:
            entity[name] = value
    if record.paused_at is not None:
        entity["paused_at"] = record.paused_at
    return entity


def policy_from_entity(entity: dict[str, Any]) -> PolicyRecord:
    return PolicyRecord(
        id=entity["RowKey"],
        definition=PolicyDefinition.model_validate(json.loads(entity["definition"])),
        created_at=entity_time(entity["created_at"]),
        effective_from=entity_time(entity["effective_from"]),
        created_by=entity.get("created_by"),
        updated_by=entity.get("updated_by"),
        version=int(entity.get("version", 1)),
        paused_at=entity_time(entity["paused_at"]) if entity.get("paused_at") is not None else None,
        paused_message=entity.get("paused_message"),
        etag=_etag(entity),
    )


# --- alerts ---------------------------------------------------------------------------------------


def alert_properties(alert: Alert) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": alert.id,
        "policy_id": alert.policy_id,
        "policy_name": alert.policy_name,
        "severity": alert.severity,
        "kind": alert.kind,
        "title": alert.title,
        "user_type": alert.user.type,
        "first_at": alert.first_activity_at,
        "last_at": alert.last_activity_at,
        "activity_ids": json.dumps(list(alert.activity_ids), separators=(",", ":")),
        "activity_count": alert.activity_count,
        "raised_at": alert.raised_at,
        "status": alert.status,
        "delivery": alert.delivery,
    }
    for name, value in (
        ("user_id", alert.user.id),
        ("user_upn", alert.user.upn),
        ("comment", alert.comment),
        ("updated_at", alert.updated_at),
        ("updated_by", alert.updated_by),
        ("delivery_message", alert.delivery_message),
        ("delivery_claim", alert.delivery_claim),
    ):
        if value is not None:
            props[name] = value
    return props


def alert_entity(alert: Alert) -> dict[str, Any]:
    return {"PartitionKey": id_partition(alert.id), "RowKey": alert.id, **alert_properties(alert)}


def alert_index_keys(alert: Alert) -> dict[str, list[str]]:
    """Index table -> the partitions holding a copy of `alert` (one RowKey: `alert_row_key`)."""
    users = []
    if alert.user.id:
        users.append(safe_key(alert.user.id))
    if alert.user.upn and safe_key(alert.user.upn) not in users:
        users.append(safe_key(alert.user.upn))
    return {"time": [day_partition(alert.first_activity_at)], "policy": [alert.policy_id], "user": users}


def alert_from_entity(entity: dict[str, Any]) -> Alert:
    return Alert(
        id=entity["id"],
        policy_id=entity["policy_id"],
        policy_name=entity.get("policy_name") or "",
        severity=entity["severity"],
        kind=entity["kind"],
        title=entity.get("title") or "",
        user=AlertUser(id=entity.get("user_id"), upn=entity.get("user_upn"), type=entity.get("user_type") or "unknown"),
        first_activity_at=entity_time(entity["first_at"]),
        last_activity_at=entity_time(entity["last_at"]),
        activity_ids=tuple(json.loads(entity.get("activity_ids") or "[]")),
        activity_count=int(entity.get("activity_count", 0)),
        raised_at=entity_time(entity["raised_at"]),
        status=entity.get("status") or "open",
        comment=entity.get("comment"),
        updated_at=entity_time(entity["updated_at"]) if entity.get("updated_at") is not None else None,
        updated_by=entity.get("updated_by"),
        delivery=entity.get("delivery") or "none",
        delivery_message=entity.get("delivery_message"),
        delivery_claim=entity.get("delivery_claim"),
        etag=_etag(entity),
    )


def _etag(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None)
    return metadata.get("etag") if isinstance(metadata, dict) else None
