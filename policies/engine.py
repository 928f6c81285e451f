"""Evaluating newly stored activities against the enabled policies, exactly once in effect.

`ActivityStore.save` calls `PolicyEngine.evaluate` with the activities it is storing for the first
time (its "fresh" set), after their rows are written and before the subscription ledger marks them
complete (see the order of writes in `activities.writer`). A crash anywhere before that mark makes
the retry evaluate them again, so every step here is idempotent:

Order of writes for one policy and the activities it matches, so that a crash at any point is
repaired by the retry and nothing is raised or counted twice:
1. repeated-activity policies only: each principal's burst counter (`policycounters`, one
   partition per policy and principal[, action]): ledger rows of the activity ids counted and the
   `summary` row holding the recent events and bursts, in one transaction (conditional on the
   summary's ETag, so two pulls at once never count an activity twice); a burst's alert id is
   fixed when the burst is first recorded;
2. the daily count of the policy's alerts (`d-<policy>-v<version>-<day>`): ledger rows of the alert
   ids admitted (or refused, past the daily limit) with the count, in one transaction; an alert id
   already in the ledger keeps its first answer;
3. each admitted alert: its `alerts` row created (or, for a growing burst, its activities merged),
   then its index copies (`policies.layout`); an alert that exists already is never created again;
4. with a webhook, a message on the alert queue while the alert's delivery is still `pending`
   (at least once: the receiver tells repeats by the alert id);
5. past the daily limit, the policy is paused with a message (visible in GET /api/policies).

Alert ids derive from the policy and the activity (single activity) or the policy, the principal and
the burst's first activity (repeated activity): `policies.layout.alert_id`.

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
from typing import Any

from activities.layout import account_key, epoch_us
from core.clock import Clock
from core.optimistic import write_optimistically
from core.ports import AlertQueue, AlertStore, PolicyStore
from ingestion.models import Activity
from policies.layout import alert_id, burst_partition, burst_row_key, daily_partition
from policies.matching import Test, compile_filter
from policies.models import MAX_ALERT_ACTIVITIES, Alert, AlertUser, PolicyRecord

logger = logging.getLogger(__name__)

POLICY_CACHE_SECONDS = 30.0
MAX_BURST_EVENTS = 500  # recent events a burst counter keeps in its summary
MAX_BURSTS = 20
Rows = dict[str, dict[str, Any]]  # ledger rows' properties by key
Admission = tuple[PolicyRecord, list[Alert], int]  # the policy, its alerts admitted, how many refused
# Counter and alert writes of one evaluation run side by side (clients are thread-safe).
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="policies")


@dataclass(frozen=True)
class Compiled:
    record: PolicyRecord
    matches: Test


@dataclass
class Evaluation:
    matched: int = 0
    alerts: int = 0  # admitted alerts written (created, or found and repaired)
    created: int = 0
    refused: int = 0
    paused: list[str] | None = None


# --- bursts (pure) -----------------------------------------------------------------------------


def advance_bursts(
    state: Mapping[str, Any] | None,
    new_events: Sequence[tuple[int, str]],
    *,
    count: int,
    window_us: int,
    new_id: Callable[[str], str],
) -> dict[str, Any]:
    """The burst state after counting `new_events` ((time in µs, activity id), none counted before).

    A burst is a run of qualifying windows: a window is `count` or more events whose times lie
    within `window_us` of the first (both edges included). Qualifying windows that overlap in time
    are one burst (one alert, its activities growing); a window overlapping no burst starts a new
    one, whose alert id is `new_id(first activity id)`. The state keeps the events of the last two
    windows (at most MAX_BURST_EVENTS) and the recent bursts.
    """
    events = sorted({(int(t), str(i)) for t, i in (state or {}).get("events", [])} | set(new_events))
    bursts: list[dict[str, Any]] = [dict(b) for b in (state or {}).get("bursts", [])]
    j = 0
    for i in range(len(events)):
        j = max(j, i)
        while j + 1 < len(events) and events[j + 1][0] - events[i][0] <= window_us:
            j += 1
        if j - i + 1 < count:
            continue
        start, end = events[i][0], events[j][0]
        ids = [e[1] for e in events[i : j + 1]]
        burst = next((b for b in bursts if start <= b["end"] and end >= b["start"]), None)
        if burst is None:
            bursts.append({"id": new_id(events[i][1]), "start": start, "end": end, "ids": ids, "count": len(ids)})
            continue
        known = list(burst["ids"])
        seen = set(known)
        known.extend(x for x in ids if x not in seen)
        burst.update(start=min(burst["start"], start), end=max(burst["end"], end), ids=known[:MAX_BURST_EVENTS])
        burst["count"] = max(int(burst.get("count", 0)), len(known))
    if events:
        horizon = events[-1][0] - 2 * window_us
        events = [e for e in events if e[0] >= horizon][-MAX_BURST_EVENTS:]
        bursts = [b for b in bursts if b["end"] >= horizon][-MAX_BURSTS:]
    return {"events": [list(e) for e in events], "bursts": bursts}


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

    def evaluate(self, activities: Sequence[Activity], first_seen: Mapping[str, datetime]) -> Evaluation:
        """Evaluate `activities` (new to the store) against every active policy; see the module's docstring.

        Matching is in memory; the storage work runs in parallel phases (every policy's burst
        counters, then their daily counts, then the alerts), each phase finished before the next
        starts, so the order of writes holds for every policy and alert.
        """
        result = Evaluation()
        if not activities:
            return result
        singles: list[tuple[PolicyRecord, Alert]] = []
        burst_work: list[tuple[PolicyRecord, str, list[Activity]]] = []
        for policy in self.active_policies():
            record = policy.record
            matched = [a for a in activities if a.timestamp >= record.effective_from and policy.matches(a, first_seen)]
            if not matched:
                continue
            result.matched += len(matched)
            if record.definition.kind == "singleActivity":
                singles.extend((record, self._single_alert(record, a)) for a in matched)
            else:
                burst_work.extend((record, partition, acts) for partition, acts in _burst_groups(record, matched))
        if not singles and not burst_work:
            return result
        # 1. burst counters, every (policy, principal) partition at once.
        candidates = list(singles)
        for found in _POOL.map(lambda work: self._burst_alerts(*work), burst_work):
            candidates.extend(found)
        # 2. daily counts, one partition per (policy, day).
        by_day: dict[tuple[str, str], tuple[PolicyRecord, list[Alert]]] = {}
        for record, alert in candidates:
            key = (record.id, daily_partition(record, alert.first_activity_at))
            by_day.setdefault(key, (record, []))[1].append(alert)
        admissions = list(_POOL.map(lambda item: self._admit(item[0][1], *item[1]), by_day.items()))
        # 3. the admitted alerts, each created once (or its burst grown).
        admitted = [(record, alert) for record, allowed, _ in admissions for alert in allowed]
        stored_alerts = self.alerts.put_alerts([alert for _, alert in admitted]) if admitted else []
        for (record, _), (stored, created) in zip(admitted, stored_alerts, strict=True):
            result.alerts += 1
            result.created += 1 if created else 0
            if created:
                logger.info("Policy %s raised alert %s", record.id, stored.id)
            # 4. the webhook's message while the alert waits for delivery.
            if record.definition.webhook_url and stored.delivery == "pending":
                self.queue.send(stored.id)
        # 5. policies past their daily limit are paused.
        refused: dict[str, PolicyRecord] = {}
        for record, _, count in admissions:
            if count:
                result.refused += count
                refused[record.id] = record
        for record in refused.values():
            self._pause(record)
        result.paused = list(refused) or None
        return result

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
        self, policy: PolicyRecord, partition: str, acts: list[Activity]
    ) -> list[tuple[PolicyRecord, Alert]]:
        """Count one principal's activities in its burst counter; the alerts of the bursts they are in."""
        repeated = policy.definition.repeated
        assert repeated is not None
        state = self._count_burst(policy, partition, acts)
        mine = {a.id for a in acts}
        first = min(acts, key=lambda a: a.timestamp)
        alerts: list[tuple[PolicyRecord, Alert]] = []
        for burst in state.get("bursts", []):
            if not mine.intersection(burst["ids"]):
                continue
            alert = Alert(
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
                activity_ids=tuple(burst["ids"][:MAX_ALERT_ACTIVITIES]),
                activity_count=int(burst["count"]),
                raised_at=self.clock.now(),
                delivery="pending" if policy.definition.webhook_url else "none",
            )
            alerts.append((policy, alert))
        return alerts

    def _count_burst(self, policy: PolicyRecord, partition: str, acts: list[Activity]) -> dict[str, Any]:
        """Count the activities in the principal's burst counter (once each); the counter's state."""
        repeated = policy.definition.repeated
        assert repeated is not None
        window_us = repeated.window_minutes * 60 * 1_000_000
        by_key = {burst_row_key(a.timestamp, a.id): a for a in acts}

        def new_id(first: str) -> str:
            return alert_id(policy.id, partition, first)

        def decide(
            summary: dict[str, Any] | None, pending: list[str]
        ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
            state = json.loads(summary["state"]) if summary and summary.get("state") else None
            new = [(epoch_us(by_key[k].timestamp), by_key[k].id) for k in pending]
            advanced = advance_bursts(state, new, count=repeated.count, window_us=window_us, new_id=new_id)
            rows = {k: {"activity_id": by_key[k].id, "time": by_key[k].timestamp} for k in pending}
            return rows, {"state": json.dumps(advanced, separators=(",", ":"))}

        summary, _ = self.alerts.count_once(partition, list(by_key), decide)
        return json.loads(summary["state"]) if summary and summary.get("state") else {}

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


def _burst_groups(policy: PolicyRecord, matched: list[Activity]) -> list[tuple[str, list[Activity]]]:
    """The matched activities by burst counter: per principal (and action, with `sameAction`)."""
    repeated = policy.definition.repeated
    assert repeated is not None
    groups: dict[str, list[Activity]] = defaultdict(list)
    for activity in matched:
        principal = account_key(activity.user) or (activity.user.upn or "").lower()
        if not principal:
            continue  # nobody to attribute a burst to
        action = activity.action if repeated.same_action else None
        groups[burst_partition(policy.id, principal, action)].append(activity)
    return list(groups.items())


def _who(activity: Activity) -> str:
    return activity.user.upn or activity.user.name or activity.user.id or activity.user.app_id or "unknown"


def _user(activity: Activity) -> AlertUser:
    return AlertUser(id=activity.user.id, upn=activity.user.upn, type=activity.user.type)


def _from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))
