"""Matching a policy's filter against a normalized activity, compiled once per policy version.

Every field given must match; a field matches when any of its values does. Text comparisons are
case-insensitive. `actions`, `resourceProviders` and `resourceTypes` take wildcards (`*` any run of
characters, `/` included; `?` one character). `ipInRanges` matches an activity whose IP address
is in one of the ranges, `ipNotInRanges` one whose IP address is in none of them: an activity
without an IP address (the platform acting for itself) matches neither. `firstActivityOfPrincipal`
matches the activity that is the earliest stored for its account.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import datetime

from activities.layout import account_key
from ingestion.models import Activity
from policies.models import ActivityFilter

Test = Callable[[Activity, Mapping[str, datetime]], bool]


def _lowered(values: list[str]) -> frozenset[str]:
    return frozenset(v.lower() for v in values)


def _wildcards(values: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(v.lower())})" for v in values))


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def compile_filter(spec: ActivityFilter) -> Test:
    """One function testing an activity against every field of `spec` (cheapest tests first)."""
    tests: list[Test] = []

    def equals(get: Callable[[Activity], str | None], values: list[str]) -> None:
        wanted = _lowered(values)

        def test(a: Activity, _: Mapping[str, datetime]) -> bool:
            value = get(a)
            return value is not None and value.lower() in wanted

        tests.append(test)

    def like(get: Callable[[Activity], str | None], values: list[str]) -> None:
        pattern = _wildcards(values)

        def test(a: Activity, _: Mapping[str, datetime]) -> bool:
            value = get(a)
            return value is not None and pattern.match(value.lower()) is not None

        tests.append(test)

    if spec.action_types:
        types = frozenset(spec.action_types)
        tests.append(lambda a, _: a.action_type in types)
    if spec.user_types:
        user_types = frozenset(spec.user_types)
        tests.append(lambda a, _: a.user.type in user_types)
    if spec.statuses:
        equals(lambda a: a.status, spec.statuses)
    if spec.categories:
        equals(lambda a: a.category, spec.categories)
    if spec.subscriptions:
        equals(lambda a: a.subscription_id, spec.subscriptions)
    if spec.resource_groups:
        equals(lambda a: a.resource_group, spec.resource_groups)
    if spec.actions:
        like(lambda a: a.action, spec.actions)
    if spec.resource_providers:
        like(lambda a: a.resource_provider, spec.resource_providers)
    if spec.resource_types:
        like(lambda a: a.resource_type, spec.resource_types)
    if spec.users:
        users = _lowered(spec.users)
        tests.append(
            lambda a, _: (
                (a.user.id is not None and a.user.id.lower() in users)
                or (a.user.upn is not None and a.user.upn.lower() in users)
            )
        )
    if spec.ip_in_ranges:
        inside = list(spec.ip_in_ranges)

        def in_ranges(a: Activity, _: Mapping[str, datetime]) -> bool:
            ip = _ip(a.ip_address)
            return ip is not None and any(ip.version == n.version and ip in n for n in inside)

        tests.append(in_ranges)
    if spec.ip_not_in_ranges:
        outside = list(spec.ip_not_in_ranges)

        def not_in_ranges(a: Activity, _: Mapping[str, datetime]) -> bool:
            ip = _ip(a.ip_address)
            return ip is not None and not any(ip.version == n.version and ip in n for n in outside)

        tests.append(not_in_ranges)
    if spec.first_activity_of_principal:

        def first(a: Activity, first_seen: Mapping[str, datetime]) -> bool:
            key = account_key(a.user)
            seen = first_seen.get(key) if key else None
            return seen is not None and a.timestamp <= seen

        tests.append(first)

    def matches(activity: Activity, first_seen: Mapping[str, datetime]) -> bool:
        return all(test(activity, first_seen) for test in tests)

    return matches
