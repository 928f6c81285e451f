"""Where models meet Table Storage: keys, the table layout, and entity <-> model mapping.

Layout (one table per access path; every key is derived from the event, so a re-read event
lands on the same rows and is written once):

| table | PartitionKey | RowKey | holds |
|---|---|---|---|
| activities | first hex digit of the id | eventDataId | the activity and its raw event (by id) |
| activitiesbytime | inverted UTC day `d…` | inverted time `_` id | the activity, newest first, all subs |
| activitiesbysub | subscription id | `e` + inverted time `_` id | ledger per subscription + `summary` row |
| activitiesbyuser | account key | `e` + inverted time `_` id | ledger per account + `account` row |
| accounts | `account` | account key | copy of each account, for listing |
| accounts | `upn` | lower-cased UPN | UPN -> account key |

The ledger rows and the summary row of a partition change together in one transaction: that
is what keeps `activityCount` and the per-subscription counts exact under redelivery. The
`account` row also holds the policies' burst counters of that principal (properties `pb_…`,
see `policies.engine`), exact for the same reason; they are never copied to `accounts`.

Activities per day: the subscription's `summary` row also holds `day_counts`, the events it
counted per UTC day of the event's time, for the newest DAY_COUNTS_KEPT days it holds (older
days are dropped by the same write), in the compact form of `encode_day_counts`. It changes in the same
transaction as the ledger rows, like `count`. The pull copies the map onto the subscription's
record (`connector` table, `subscription` partition) with the count, in the record write it makes
after every stored page anyway, so that the chart of all subscriptions is read in one query of
that partition (one request per 1,000 subscriptions), never by scanning activities nor by one
read per subscription.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.timefmt import wire_time
from ingestion.models import Activity, ActivityUser

# Table Storage limits.
MAX_STRING_CHARS = 32 * 1024  # 64 KiB of UTF-16
MAX_RAW_CHUNKS = 12  # leaves room below the 1 MiB entity limit for the other properties
BATCH_BYTES = 3 * 1024 * 1024  # a transaction's payload must stay below 4 MiB

LEDGER_PREFIX = "e"
SUBSCRIPTION_SUMMARY_RK = "summary"
ACCOUNT_SUMMARY_RK = "account"
ACCOUNT_COPY_PK = "account"
# The recency index of the account copies, in their partition: RowKey "~<inverted lastSeen>~<key>".
# "~" sorts after every character of an account key, so the index rows follow the copies.
ACCOUNT_RECENT_PREFIX = "~"
ACCOUNT_RECENT_END = "~~"  # above every index row (digits sort before "~")
UPN_ALIAS_PK = "upn"
DAY_COUNTS = "day_counts"  # the summary row's per-day map, in the form of `encode_day_counts`
DAY_COUNTS_KEPT = 100  # days kept in it: the 90 days the API serves, and a margin

_MAX_US = 10**16 - 1
_SAFE = re.compile(r"^[A-Za-z0-9@._:\-]{1,200}$")


def safe_key(value: str) -> str:
    """A PartitionKey/RowKey-safe, case-insensitive key for a value (hashes anything unusual)."""
    lowered = value.strip().lower()
    if _SAFE.match(lowered):
        return lowered
    return "h" + hashlib.sha256(lowered.encode("utf-8")).hexdigest()[:40]


def epoch_us(value: datetime) -> int:
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def inverted_time(value: datetime) -> str:
    """Sorts newest first: a later time gives a smaller string."""
    return f"{_MAX_US - epoch_us(value):016d}"


def last_seen_us(row: dict[str, Any]) -> int:
    """An account row's lastSeen in microseconds since the epoch (0 when unknown)."""
    last_seen = row.get("last_seen")
    if not isinstance(last_seen, datetime):
        return 0
    return epoch_us(last_seen if last_seen.tzinfo is not None else last_seen.replace(tzinfo=UTC))


def account_recent_key(last_seen_us: int, key: str) -> str:
    """The RowKey of an account's recency index row: newest lastSeen first, then the account key."""
    return f"{ACCOUNT_RECENT_PREFIX}{_MAX_US - last_seen_us:016d}{ACCOUNT_RECENT_PREFIX}{key}"


def time_row_key(activity: Activity) -> str:
    return f"{inverted_time(activity.timestamp)}_{safe_key(activity.id)}"


def ledger_row_key(activity: Activity) -> str:
    return LEDGER_PREFIX + time_row_key(activity)


def day_partition(value: datetime) -> str:
    day = value.astimezone(UTC)
    return f"d{99999999 - (day.year * 10000 + day.month * 100 + day.day):08d}"


def day_key(value: datetime) -> str:
    """The UTC day of a time, as the per-day map and the API name it: YYYY-MM-DD."""
    return value.astimezone(UTC).date().isoformat()


def _parse_day_counts(stored: Any) -> tuple[date, list[int]] | None:
    """(the newest day, the counts from it backwards) of a stored per-day map; None if absent or unreadable."""
    if not isinstance(stored, str) or "/" not in stored:
        return None
    newest, _, numbers = stored.partition("/")
    try:
        return date.fromisoformat(newest), [int(n) for n in numbers.split(",")] if numbers else []
    except ValueError:
        return None


def day_counts(value: Any) -> dict[str, int]:
    """The per-day map from its stored form (see `encode_day_counts`); absent or unreadable: empty."""
    parsed = _parse_day_counts(value)
    if parsed is None:
        return {}
    last, counts = parsed
    return {(last - timedelta(days=back)).isoformat(): n for back, n in enumerate(counts) if n > 0}


def counts_on_days(stored: Any, days: list[date]) -> list[int]:
    """The counts of the stored per-day map on each of `days`, read straight from its stored form.

    The chart's read: no map is built (a listing of 10,000 subscriptions decodes 10,000 of them).
    """
    parsed = _parse_day_counts(stored)
    if parsed is None:
        return [0] * len(days)
    newest, counts = parsed
    last = newest.toordinal()
    out = []
    for day in days:
        back = last - day.toordinal()
        out.append(counts[back] if 0 <= back < len(counts) and counts[back] > 0 else 0)
    return out


def encode_day_counts(counts: dict[str, int]) -> str:
    """The per-day map as stored: the newest day, then the counts from it backwards, one a day.

    `2026-11-26/118,0,7` is 118 on 26 November, none on the 25th, 7 on the 24th: about 4
    characters a day, under 500 for the 100 days kept (a JSON map would take about 1.9 KB).
    """
    days = {day: n for day, n in counts.items() if n > 0}
    if not days:
        return ""
    newest, oldest = date.fromisoformat(max(days)), date.fromisoformat(min(days))
    span = (newest - oldest).days + 1
    values = [days.get((newest - timedelta(days=back)).isoformat(), 0) for back in range(span)]
    return f"{newest.isoformat()}/{','.join(str(n) for n in values)}"


def add_day_counts(counts: dict[str, int], times: Iterable[datetime], *, kept: int = DAY_COUNTS_KEPT) -> dict[str, int]:
    """`counts` with one more event on the day of each time, keeping the newest `kept` days.

    The days kept are the `kept` days ending with the newest day in the map; an event older than
    them is not added (it is still counted in the total).
    """
    merged = dict(counts)
    for when in times:
        day = day_key(when)
        merged[day] = merged.get(day, 0) + 1
    if not merged:
        return merged
    newest = date.fromisoformat(max(merged))
    oldest = (newest - timedelta(days=kept - 1)).isoformat()
    return {day: merged[day] for day in sorted(merged) if day >= oldest}


def id_partition(activity_id: str) -> str:
    first = activity_id.strip().lower()[:1]
    return first if first in "0123456789abcdef" and first else "x"


def account_key(user: ActivityUser) -> str | None:
    return safe_key(user.id) if user.id else None


# --- activities ------------------------------------------------------------------------------

_SCALARS = (
    "id",
    "tenant_id",
    "subscription_id",
    "ip_address",
    "action",
    "action_name",
    "action_type",
    "category",
    "status",
    "sub_status",
    "resource_id",
    "resource_group",
    "resource_provider",
    "resource_type",
    "correlation_id",
    "operation_id",
    "level",
    "app",
)


# The properties an activity is rebuilt from (index rows also carry lower-cased helper properties).
ACTIVITY_PROPERTIES = [
    "timestamp",
    "ingested_at",
    *_SCALARS,
    "user_id",
    "user_upn",
    "user_name",
    "user_type",
    "user_app_id",
]


def _clip(value: str | None) -> str | None:
    if value is None or len(value) <= MAX_STRING_CHARS:
        return value
    return value[: MAX_STRING_CHARS - 16] + "…[truncated]"


def activity_properties(activity: Activity) -> dict[str, Any]:
    """The searchable projection stored in every index row (no raw event)."""
    props: dict[str, Any] = {"timestamp": activity.timestamp, "ingested_at": activity.ingested_at}
    for name in _SCALARS:
        value = getattr(activity, name)
        if value is not None:
            props[name] = _clip(value)
    user = activity.user
    props["user_type"] = user.type
    for name, value in (
        ("user_id", user.id),
        ("user_upn", user.upn),
        ("user_name", user.name),
        ("user_app_id", user.app_id),
    ):
        if value is not None:
            props[name] = _clip(value)
    key = account_key(user)
    if key:
        props["user_key"] = key
    props["subscription_lc"] = activity.subscription_id.lower()
    if activity.action:
        props["action_lc"] = _clip(activity.action.lower())
    if activity.status:
        props["status_lc"] = _clip(activity.status.lower())
    return props


def activity_from_properties(entity: dict[str, Any]) -> Activity:
    return Activity(
        id=entity["id"],
        timestamp=entity_time(entity["timestamp"]),
        ingested_at=entity_time(entity["ingested_at"]),
        app=entity.get("app") or "Microsoft Azure",
        tenant_id=entity.get("tenant_id"),
        subscription_id=entity["subscription_id"],
        user=ActivityUser(
            id=entity.get("user_id"),
            upn=entity.get("user_upn"),
            name=entity.get("user_name"),
            type=entity.get("user_type") or "unknown",
            app_id=entity.get("user_app_id"),
        ),
        ip_address=entity.get("ip_address"),
        action=entity.get("action"),
        action_name=entity.get("action_name"),
        action_type=entity.get("action_type") or "other",
        category=entity.get("category"),
        status=entity.get("status"),
        sub_status=entity.get("sub_status"),
        resource_id=entity.get("resource_id"),
        resource_group=entity.get("resource_group"),
        resource_provider=entity.get("resource_provider"),
        resource_type=entity.get("resource_type"),
        correlation_id=entity.get("correlation_id"),
        operation_id=entity.get("operation_id"),
        level=entity.get("level"),
    )


def activity_entity(activity: Activity, raw: dict[str, Any]) -> dict[str, Any]:
    """The row of the `activities` table: the projection plus the original event, split in chunks."""
    entity = {
        "PartitionKey": id_partition(activity.id),
        "RowKey": safe_key(activity.id),
        **activity_properties(activity),
    }
    text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    chunks = [text[i : i + MAX_STRING_CHARS] for i in range(0, len(text), MAX_STRING_CHARS)] or [""]
    if len(chunks) > MAX_RAW_CHUNKS:
        chunks = chunks[:MAX_RAW_CHUNKS]
        entity["raw_truncated"] = True
    for index, chunk in enumerate(chunks):
        entity[f"raw_{index}"] = chunk
    entity["raw_chunks"] = len(chunks)
    return entity


def raw_from_entity(entity: dict[str, Any]) -> dict[str, Any] | str:
    """The original event; a string with a marker when it had to be truncated."""
    text = "".join(str(entity.get(f"raw_{i}", "")) for i in range(int(entity.get("raw_chunks", 0))))
    if entity.get("raw_truncated"):
        return {"truncated": True, "prefix": text}
    try:
        value = json.loads(text)
    except ValueError:
        return {"truncated": True, "prefix": text}
    return value if isinstance(value, dict) else {"value": value}


def time_index_entity(activity: Activity) -> dict[str, Any]:
    return {
        "PartitionKey": day_partition(activity.timestamp),
        "RowKey": time_row_key(activity),
        **activity_properties(activity),
    }


def ledger_entity(partition: str, activity: Activity) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": ledger_row_key(activity), **activity_properties(activity)}


def entity_size(entity: dict[str, Any]) -> int:
    """A generous estimate of an entity's size on the wire, for batching below the 4 MiB limit."""
    size = 0
    for key, value in entity.items():
        size += len(key) * 2 + 64
        size += len(value) * 2 if isinstance(value, str) else 16
    return size


def entity_time(value: Any) -> datetime:
    """A datetime read from a row, as a plain datetime in UTC (one without a zone is taken as UTC)."""
    if not isinstance(value, datetime):
        raise ValueError(f"not a datetime: {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond, tzinfo=UTC
    )


# --- accounts --------------------------------------------------------------------------------


def account_api(entity: dict[str, Any]) -> dict[str, Any]:
    """An account row (summary or copy) as the API shows it."""

    def when(name: str) -> str | None:
        value = entity.get(name)
        return wire_time(entity_time(value)) if value is not None else None

    return {
        "id": entity.get("user_id"),
        "upn": entity.get("upn"),
        "name": entity.get("name"),
        "type": entity.get("type") or "unknown",
        "appId": entity.get("app_id"),
        "firstSeen": when("first_seen"),
        "lastSeen": when("last_seen"),
        "lastIpAddress": entity.get("last_ip"),
        "activityCount": int(entity.get("activity_count", 0)),
        "subscriptions": sorted(json.loads(entity.get("subscriptions") or "[]")),
        "subscriptionsTruncated": bool(entity.get("subscriptions_truncated", False)),
    }


# An account lists at most this many subscriptions (about 40 characters each in its JSON list, so
# the list stays far below a string property's limit however many subscriptions an automation
# identity touches); beyond it the account says its list is cut.
MAX_ACCOUNT_SUBSCRIPTIONS = 500


# The account summary's properties that the policies keep there (burst counters): never copied
# to the accounts listing.
POLICY_PROPERTY_PREFIX = "pb_"


def listing_properties(row: dict[str, Any]) -> dict[str, Any]:
    """An account summary's properties for its listing copy: without the policies' burst counters."""
    return {k: v for k, v in row.items() if not k.startswith(POLICY_PROPERTY_PREFIX)}


def merge_account(summary: dict[str, Any] | None, key: str, activities: list[Activity]) -> dict[str, Any]:
    """The account summary row after counting `activities` (all new to this account)."""
    merged: dict[str, Any] = dict(summary or {})
    merged.pop("etag", None)
    merged["PartitionKey"] = key
    merged["RowKey"] = ACCOUNT_SUMMARY_RK
    subs = set(json.loads(merged.get("subscriptions") or "[]"))
    count = int(merged.get("activity_count", 0))
    first = merged.get("first_seen")
    last = merged.get("last_seen")
    for activity in sorted(activities, key=lambda a: a.timestamp):
        user = activity.user
        count += 1
        if activity.subscription_id in subs or len(subs) < MAX_ACCOUNT_SUBSCRIPTIONS:
            subs.add(activity.subscription_id)
        else:
            merged["subscriptions_truncated"] = True
        if first is None or activity.timestamp < entity_time(first):
            first = activity.timestamp
        if last is None or activity.timestamp >= entity_time(last):
            last = activity.timestamp
            if activity.ip_address:
                merged["last_ip"] = activity.ip_address
            # The newest event's view of the identity wins; nulls never erase what is known.
            for name, value in (
                ("user_id", user.id),
                ("upn", user.upn),
                ("name", user.name),
                ("type", user.type),
                ("app_id", user.app_id),
            ):
                if value is not None and not (name == "type" and value == "unknown" and merged.get("type")):
                    merged[name] = _clip(value)
        for name, value in (("user_id", user.id), ("upn", user.upn), ("name", user.name), ("app_id", user.app_id)):
            if value is not None and merged.get(name) is None:
                merged[name] = _clip(value)
        merged.setdefault("type", user.type)
    merged["activity_count"] = count
    merged["first_seen"] = first
    merged["last_seen"] = last
    merged["subscriptions"] = json.dumps(sorted(subs))
    merged["version"] = int(merged.get("version", 0)) + 1
    return merged
