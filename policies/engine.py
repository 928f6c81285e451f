"""Evaluating newly stored activities against the enabled policies, exactly once in effect.

`ActivityStore.save` calls `PolicyEngine.evaluate` with the activities it is storing for the first
time (its "fresh" set), after their rows are written and before the subscription ledger marks them
complete (see the order of writes in `activities.writer`). A crash anywhere before that mark makes
the retry evaluate them again, so every step here is idempotent:

Order of writes for one policy and the activities it matches, so that a crash at any point is
repaired by the retry and nothing is raised or counted twice:
1. repeated-activity policies only, during the writer's step 3: each principal's burst counters
   live in its account summary row (`activitiesbyuser`, one property per policy[, action]:
   `burst_properties`), so they change in the very transaction that adds the activities' ledger
   rows to the account's ledger: an activity is counted towards a burst exactly when it is
   counted for its account, once, whatever the redeliveries and concurrent pulls (the transaction
   is conditional on the summary's ETag); a burst's alert id is fixed when it is first recorded.
   `evaluate` then reads the bursts from the summaries the writer hands it;
2. the daily count of the policy's alerts (`d-<policy>-v<version>-<day>`): ledger rows of the alert
   ids admitted (or refused, past the daily limit) with the count, in one transaction; an alert id
   already in the ledger keeps its first answer; a burst's day is fixed when it is first recorded;
3. each admitted alert: its `alerts` row created (or, for a growing burst, its activities merged),
   then its index copies (`policies.layout`); an alert that exists already is never created again;
4. with a webhook, a message on the alert queue when the alert is created, or while its delivery
   is still `pending` with no attempt made (a crash lost the message); a growing burst starts no
   second delivery chain once an attempt was made (at least once: the receiver tells repeats by the
   alert id);
5. past the daily limit, the policy is paused with a message (visible in GET /api/policies).

Alert ids derive from the policy and the activity (single activity) or the policy, the principal (and
action) and the burst's first activity (repeated activity): `policies.layout.alert_id`.

Enabled policies are cached per worker for `POLICY_CACHE_SECONDS` (a change applies to activities
stored after the cache expires; a change made through this worker's API applies at once).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from activities.layout import MAX_STRING_CHARS, POLICY_PROPERTY_PREFIX, account_key, epoch_us
from core.clock import Clock
from core.optimistic import write_optimistically
from core.ports import AlertQueue, AlertStore, PolicyStore
from ingestion.models import Activity
from policies.layout import alert_id, daily_partition
from policies.matching import Test, compile_filter
from policies.models import MAX_ALERT_ACTIVITIES, Alert, AlertUser, PolicyRecord

logger = logging.getLogger(__name__)

POLICY_CACHE_SECONDS = 30.0
MAX_BURST_EVENTS = 200  # recent events a burst counter keeps (within two windows)
MAX_BURSTS = 20  # recent bursts a counter keeps
MAX_COUNTERS = 16  # burst counters an account summary keeps: the stalest goes first
# A counter's stored JSON, in characters: under Table Storage's 64 KiB string limit, and the most
# counters a summary keeps (16 x 32 KiB of UTF-16) stay far below its 1 MiB entity limit. With
# GUID event ids that is about 150 events (at least `count`, at most 100, are needed to see a burst).
MAX_COUNTER_CHARS = MAX_STRING_CHARS // 2
BURST_PREFIX = POLICY_PROPERTY_PREFIX  # the account summary's properties holding burst counters
Rows = dict[str, dict[str, Any]]  # ledger rows' properties by key
Part = Literal["all", "early", "late"]
Admission = tuple[PolicyRecord, list[Alert], int]  # the policy, its alerts admitted, how many refused
# Counter and alert writes of one evaluation run side by side (clients are thread-safe).
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="policies")


@dataclass(frozen=True)
class Compiled:
    record: PolicyRecord
    matches: Test


# --- bursts (pure) -----------------------------------------------------------------------------


def advance_bursts(
    state: Mapping[str, Any] | None,
    new_events: Sequence[tuple[int, str]],
    *,
    count: int,
    window_us: int,
    new_id: Callable[[str], str],
) -> dict[str, Any]:
    """The burst counter's state after counting `new_events` ((time in µs, activity id), new to it).

    A window is `count` or more events whose times lie within `window_us` of the first (both edges
    included). A qualifying window joins the burst one of its events already belongs to, or the
    burst whose span it overlaps; otherwise it starts a burst whose alert id is
    `new_id(first activity id)`. An event joins one burst at most, once, and a new event inside a
    burst's span joins it: each burst's `count` is exact. The state keeps the events counted last
    (`[time, id, burst id or null]`: 4 times `count`, at least 50, at most MAX_BURST_EVENTS, fewer when
    long ids would take the state past MAX_COUNTER_CHARS; pages
    come newest first, so these are the events near the next ones) and the bursts near them.
    """
    counted: list[list[Any]] = [
        [int(e[0]), str(e[1]), e[2] if len(e) > 2 else None] for e in (state or {}).get("events", [])
    ]
    known = {e[1] for e in counted}
    fresh = [[int(t), str(i), None] for t, i in new_events if i not in known]
    counted.extend(fresh)
    bursts: dict[str, dict[str, Any]] = {b["id"]: dict(b) for b in (state or {}).get("bursts", [])}
    events = sorted(counted, key=lambda e: (e[0], e[1]))  # the same entries: marking one marks it in `counted`
    j = 0
    for i in range(len(events)):
        j = max(j, i)
        while j + 1 < len(events) and events[j + 1][0] - events[i][0] <= window_us:
            j += 1
        if j - i + 1 < count:
            continue
        window = events[i : j + 1]
        start, end = window[0][0], window[-1][0]
        owner = next((e[2] for e in window if e[2] in bursts), None)
        if owner is None:
            owner = next((b["id"] for b in bursts.values() if start <= b["end"] and end >= b["start"]), None)
        if owner is None:
            owner = new_id(window[0][1])
            bursts[owner] = {"id": owner, "start": start, "end": end, "count": 0, "day": _day(start)}
        burst = bursts[owner]
        burst.update(start=min(burst["start"], start), end=max(burst["end"], end))
        for event in window:
            if event[2] is None:
                event[2] = owner
                burst["count"] += 1
    for event in fresh:  # inside a burst's span, though the events around it were forgotten
        if event[2] is None:
            spanning = [b for b in bursts.values() if b["start"] <= event[0] <= b["end"]]
            if spanning:
                event[2] = spanning[0]["id"]
                spanning[0]["count"] += 1
    kept = counted[-min(max(4 * count, 50), MAX_BURST_EVENTS) :]
    state = _kept_state(kept, bursts, window_us)
    size = _json_chars(state)
    if size > MAX_COUNTER_CHARS:  # long ids: forget the events counted first until it fits
        drop = 0
        while drop < len(kept) and size > MAX_COUNTER_CHARS:
            size -= _json_chars(kept[drop]) + 1
            drop += 1
        state = _kept_state(kept[drop:], bursts, window_us)
    return state


def _kept_state(kept: list[list[Any]], bursts: Mapping[str, dict[str, Any]], window_us: int) -> dict[str, Any]:
    """The counter's state: the events kept and the bursts near them (the newest MAX_BURSTS)."""
    oldest = min((e[0] for e in kept), default=0)
    near = sorted((b for b in bursts.values() if b["end"] >= oldest - window_us), key=lambda b: b["end"])
    return {"events": kept, "bursts": near[-MAX_BURSTS:]}


def _day(at_us: int) -> str:
    """The UTC day (YYYYMMDD) of a time in µs: a burst's day in its policy's daily count, fixed when first recorded."""
    return f"{_from_us(at_us):%Y%m%d}"


def _json_chars(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


# --- the engine --------------------------------------------------------------------------------


class PolicyEngine:
    """Evaluates activities against the enabled policies; see the module's docstring for the guarantees."""

    def __init__(
        self,
        policies: PolicyStore,
        alerts: AlertStore,
        queue: AlertQueue,
        clock: Clock,
        *,
        daily_limit: int,
        cache_seconds: float = POLICY_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policies = policies
        self.alerts = alerts
        self.queue = queue
        self.clock = clock
        self.daily_limit = daily_limit
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Compiled]] | None = None

    # policies, cached ------------------------------------------------------------------------

    def active_policies(self) -> list[Compiled]:
        with self._lock:
            now = self._monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
        compiled = [Compiled(p, compile_filter(p.definition.filter)) for p in self.policies.list() if p.active]
        with self._lock:
            self._cached = (self._monotonic(), compiled)
        return compiled

    def invalidate(self) -> None:
        """Forget the cached policies (after a change through this worker's API)."""
        with self._lock:
            self._cached = None

    # evaluation ------------------------------------------------------------------------------

    def burst_properties(self, summary: Mapping[str, Any] | None, activities: Sequence[Activity]) -> dict[str, Any]:
        """An account summary's burst counters after counting `activities` (new to its ledger).

        The writer calls this inside the account's ledger transaction (`activities.writer`), so the
        counters change exactly when the activities are counted for the account. Returns the
        properties to set (one per repeated-activity policy, and action with `sameAction`); stale
        counters past MAX_COUNTERS are set to None (removed).
        """
        changed: dict[str, Any] = {}
        for policy in self.active_policies():
            record = policy.record
            repeated = record.definition.repeated
            if repeated is None:
                continue
            matched = [a for a in activities if a.timestamp >= record.effective_from and policy.matches(a, {})]
            for action, acts in _by_action(record, matched).items():
                name = burst_property(record.id, action)
                raw = changed.get(name) or (summary or {}).get(name)
                state = json.loads(raw) if isinstance(raw, str) else None
                key = account_key(acts[0].user) or ""

                def new_id(first: str, record: PolicyRecord = record, key: str = key, action: str = action) -> str:
                    return alert_id(record.id, key, action, first)

                advanced = advance_bursts(
                    state,
                    [(epoch_us(a.timestamp), a.id) for a in acts],
                    count=repeated.count,
                    window_us=repeated.window_minutes * 60 * 1_000_000,
                    new_id=new_id,
                )
                changed[name] = json.dumps(advanced, separators=(",", ":"))
        if changed:
            counters = {k: v for k, v in (summary or {}).items() if k.startswith(BURST_PREFIX) and v is not None}
            counters.update(changed)
            if len(counters) > MAX_COUNTERS:
                newest = {k: _newest(v) for k, v in counters.items()}
                for stale in sorted(counters, key=lambda k: newest[k])[: len(counters) - MAX_COUNTERS]:
                    changed[stale] = None
        return changed

    def evaluate(
        self,
        activities: Sequence[Activity],
        first_seen: Mapping[str, datetime],
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        part: Part = "all",
    ) -> None:
        """Evaluate `activities` (new to the store) against every active policy; see the module's docstring.

        `accounts` holds the account summaries the writer just wrote (with their burst counters).
        `part` lets the writer evaluate in two parts: "early", the policies that need nothing of the
        accounts (single activity, not `firstActivityOfPrincipal`), while it counts the accounts;
        "late", the others, once it has.
        Matching is in memory; the storage work runs in phases (daily counts, then the alerts), each
        finished before the next starts, so the order of writes holds for every policy and alert.
        """
        if not activities:
            return
        candidates: list[tuple[PolicyRecord, Alert, str]] = []  # with the day the alert counts on
        for policy in self.active_policies():
            record = policy.record
            if part != "all" and (part == "early") != _needs_nothing_of_accounts(record):
                continue
            matched = [a for a in activities if a.timestamp >= record.effective_from and policy.matches(a, first_seen)]
            if not matched:
                continue
            if record.definition.kind == "singleActivity":
                candidates.extend((record, self._single_alert(record, a), "") for a in matched)
            else:
                candidates.extend(self._burst_alerts(record, matched, accounts or {}))
        if not candidates:
            return
        # 2. daily counts, one partition per (policy, day).
        by_day: dict[tuple[str, str], tuple[PolicyRecord, list[Alert]]] = {}
        for record, alert, day in candidates:
            key = (record.id, daily_partition(record, alert.first_activity_at, day=day))
            by_day.setdefault(key, (record, []))[1].append(alert)
        admissions = list(_POOL.map(lambda item: self._admit(item[0][1], *item[1]), by_day.items()))
        # 3. the admitted alerts, each created once (or its burst grown).
        admitted = [(record, alert) for record, allowed, _ in admissions for alert in allowed]
        stored_alerts = self.alerts.put_alerts([alert for _, alert in admitted]) if admitted else []
        for (record, _), (stored, created) in zip(admitted, stored_alerts, strict=True):
            if created:
                logger.info("Policy %s raised alert %s", record.id, stored.id)
            # 4. the webhook's message: when the alert is created, or again while no message has
            # claimed its first attempt (a crash may have lost the first message). A burst that grows
            # after the claim sends nothing; one that grows before it sends a second first message,
            # and `run_notify` lets only one of the two claim: one delivery chain either way.
            if (
                record.definition.webhook_url
                and stored.delivery == "pending"
                and (created or (stored.delivery_claim is None and stored.delivery_message is None))
            ):
                self.queue.send(stored.id)
        # 5. policies past their daily limit are paused.
        refused: dict[str, PolicyRecord] = {}
        for record, _, count in admissions:
            if count:
                refused[record.id] = record
        for record in refused.values():
            self._pause(record)

    def _single_alert(self, policy: PolicyRecord, activity: Activity) -> Alert:
        what = activity.action or activity.action_name or "an operation"
        return Alert(
            id=alert_id(policy.id, activity.id),
            policy_id=policy.id,
            policy_name=policy.definition.name,
            severity=policy.definition.severity,
            kind="singleActivity",
            title=f"{policy.definition.name}: {what} by {_who(activity)}",
            user=_user(activity),
            first_activity_at=activity.timestamp,
            last_activity_at=activity.timestamp,
            activity_ids=(activity.id,),
            activity_count=1,
            raised_at=self.clock.now(),
            delivery="pending" if policy.definition.webhook_url else "none",
        )

    def _burst_alerts(
        self, policy: PolicyRecord, matched: list[Activity], accounts: Mapping[str, Mapping[str, Any]]
    ) -> list[tuple[PolicyRecord, Alert, str]]:
        """The alerts of the bursts (in the summaries' counters) that these activities are in, with their days."""
        repeated = policy.definition.repeated
        assert repeated is not None
        by_account: dict[str, list[Activity]] = defaultdict(list)
        for activity in matched:
            key = account_key(activity.user)
            if key:  # an activity without an account is counted towards no burst
                by_account[key].append(activity)
        alerts: list[tuple[PolicyRecord, Alert, str]] = []
        for key, acts in by_account.items():
            summary = accounts.get(key) or {}
            for action, group in _by_action(policy, acts).items():
                raw = summary.get(burst_property(policy.id, action))
                if not isinstance(raw, str):
                    continue
                state = json.loads(raw)
                members: dict[str, list[str]] = defaultdict(list)
                for event in sorted(state.get("events", [])):
                    if len(event) > 2 and event[2]:
                        members[event[2]].append(event[1])
                mine = {a.id for a in group}
                first = min(group, key=lambda a: a.timestamp)
                for burst in state.get("bursts", []):
                    ids = members.get(burst["id"], [])
                    if mine.intersection(ids) or any(
                        burst["start"] <= epoch_us(a.timestamp) <= burst["end"] for a in group
                    ):
                        day = str(burst.get("day") or _day(burst["start"]))  # counters from before the day was kept
                        alerts.append((policy, self._burst_alert(policy, burst, ids, first), day))
        return alerts

    def _burst_alert(self, policy: PolicyRecord, burst: Mapping[str, Any], ids: list[str], first: Activity) -> Alert:
        repeated = policy.definition.repeated
        assert repeated is not None
        return Alert(
            id=burst["id"],
            policy_id=policy.id,
            policy_name=policy.definition.name,
            severity=policy.definition.severity,
            kind="repeatedActivity",
            title=(
                f"{policy.definition.name}: {burst['count']} activities by {_who(first)} "
                f"within {repeated.window_minutes} minutes"
            ),
            user=_user(first),
            first_activity_at=_from_us(burst["start"]),
            last_activity_at=_from_us(burst["end"]),
            activity_ids=tuple(ids[:MAX_ALERT_ACTIVITIES]),  # those still in the counter: the alert keeps the rest
            activity_count=int(burst["count"]),
            raised_at=self.clock.now(),
            delivery="pending" if policy.definition.webhook_url else "none",
        )

    def _admit(
        self, partition: str, policy: PolicyRecord, alerts: list[Alert]
    ) -> tuple[PolicyRecord, list[Alert], int]:
        """Count the alerts in the policy's daily count: (the policy, those admitted, how many refused)."""
        limit = self.daily_limit
        keys = sorted({a.id for a in alerts})

        def decide(
            summary: dict[str, Any] | None, pending: list[str]
        ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
            count = int((summary or {}).get("count", 0))
            refused = int((summary or {}).get("refused", 0))
            rows: Rows = {}
            for key in pending:
                ok = count < limit
                count += 1 if ok else 0
                refused += 0 if ok else 1
                rows[key] = {"admitted": ok}
            return rows, {"count": count, "refused": refused}

        _, rows = self.alerts.count_once(partition, keys, decide)
        allowed = [a for a in alerts if rows.get(a.id, {}).get("admitted")]
        return policy, allowed, len(alerts) - len(allowed)

    def _pause(self, policy: PolicyRecord) -> None:
        now = self.clock.now()
        message = (
            f"Paused at {now:%Y-%m-%d %H:%M} UTC: the policy matched more than {self.daily_limit} alerts in a day "
            f"(POLICY_DAILY_ALERT_LIMIT). Narrow its filter, or re-enable it as it is, to resume."
        )

        def attempt() -> None:
            current = self.policies.get(policy.id)
            if current is None or current.version != policy.version or current.paused_at is not None:
                return  # deleted, changed since (a fresh daily count), or paused already
            self.policies.replace(current.paused(now, message))

        write_optimistically(attempt, what=f"The policy {policy.id}")
        logger.warning("Policy %s paused: over the daily limit of %s alerts", policy.id, self.daily_limit)
        self.invalidate()


def _needs_nothing_of_accounts(policy: PolicyRecord) -> bool:
    definition = policy.definition
    return definition.kind == "singleActivity" and not definition.filter.first_activity_of_principal


def burst_property(policy_id: str, action: str) -> str:
    """The account summary's property holding one policy's (and action's) burst counter."""
    return BURST_PREFIX + alert_id("burst", policy_id, action)[:24]


def _by_action(policy: PolicyRecord, activities: list[Activity]) -> dict[str, list[Activity]]:
    """Activities by the counter they go to: one per action with `sameAction`, else one ("")."""
    repeated = policy.definition.repeated
    assert repeated is not None
    groups: dict[str, list[Activity]] = defaultdict(list)
    for activity in activities:
        groups[(activity.action or "").lower() if repeated.same_action else ""].append(activity)
    return groups


def _newest(raw: Any) -> int:
    try:
        events = json.loads(raw).get("events") or [[0]]
        return int(events[-1][0])
    except (ValueError, TypeError, AttributeError, IndexError):
        return 0


def _who(activity: Activity) -> str:
    return activity.user.upn or activity.user.name or activity.user.id or activity.user.app_id or "unknown"


def _user(activity: Activity) -> AlertUser:
    return AlertUser(id=activity.user.id, upn=activity.user.upn, type=activity.user.type)


def _from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))
