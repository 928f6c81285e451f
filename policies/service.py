"""Policies and alerts as the API changes them: domain results and domain errors, no HTTP."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from core.auth import Principal
from core.clock import Clock
from core.errors import Conflict, InvalidInput, NotFound
from core.optimistic import AlreadyExists, write_optimistically
from core.ports import AlertStore, PolicyStore
from policies.egress import literal_internal_host
from policies.engine import PolicyEngine
from policies.models import Alert, PolicyDefinition, PolicyRecord, parse_alert_change, parse_definition
from policies.templates import from_template

MAX_POLICIES = 100


def _definition(
    document: dict[str, Any], *, webhook_secret: str | None, allow_private_webhooks: bool
) -> PolicyDefinition:
    definition = parse_definition(document)
    if definition.webhook_url and not webhook_secret:
        raise InvalidInput(
            "webhookUrl",
            "cannot be used until the app setting ALERT_WEBHOOK_SECRET is set (the key that signs every alert)",
        )
    host = urlsplit(definition.webhook_url).hostname if definition.webhook_url else None
    if host and not allow_private_webhooks and literal_internal_host(host):
        raise InvalidInput(
            "webhookUrl",
            "must not point at an internal address (loopback, private, link-local, shared, multicast or reserved); "
            "alerts are only sent to public internet addresses",
        )
    return definition


def _who(principal: Principal) -> str:
    return principal.upn or principal.object_id or principal.app_id or "unknown"


def create_policy(
    store: PolicyStore,
    engine: PolicyEngine | None,
    clock: Clock,
    principal: Principal,
    document: dict[str, Any],
    *,
    webhook_secret: str | None,
    allow_private_webhooks: bool = False,
) -> PolicyRecord:
    definition = _definition(
        from_template(document), webhook_secret=webhook_secret, allow_private_webhooks=allow_private_webhooks
    )
    # Checked, then written: concurrent creations can pass the limit by a few (documented in docs/policies.md).
    if len(store.list()) >= MAX_POLICIES:
        raise Conflict(f"There are already {MAX_POLICIES} policies, the most the connector keeps; delete one first.")
    now = clock.now()
    record = PolicyRecord(
        id=str(uuid.uuid4()),
        definition=definition,
        created_at=now,
        effective_from=now,
        created_by=_who(principal),
        updated_by=_who(principal),
    )
    try:
        stored = store.insert(record)
    except AlreadyExists:  # a random id taken: astronomically unlikely; say so rather than overwrite
        raise Conflict("A policy with the new id already exists; try again.") from None
    if engine is not None:
        engine.invalidate()
    return stored


def get_policy(store: PolicyStore, policy_id: str) -> PolicyRecord:
    record = store.get(policy_id.lower())
    if record is None:
        raise NotFound(f"No policy with id {policy_id!r}.")
    return record


def replace_policy(
    store: PolicyStore,
    engine: PolicyEngine | None,
    clock: Clock,
    principal: Principal,
    policy_id: str,
    document: dict[str, Any],
    *,
    webhook_secret: str | None,
    allow_private_webhooks: bool = False,
) -> PolicyRecord:
    """A new definition: a new version, evaluated from now on; a pause is lifted (a fresh daily count)."""
    definition = _definition(document, webhook_secret=webhook_secret, allow_private_webhooks=allow_private_webhooks)

    def attempt() -> PolicyRecord:
        current = get_policy(store, policy_id)
        now = clock.now()
        changed = replace(
            current,
            definition=definition,
            effective_from=now,
            updated_by=_who(principal),
            version=current.version + 1,
            paused_at=None,
            paused_message=None,
        )
        return store.replace(changed)

    stored = write_optimistically(attempt, what=f"The policy {policy_id}")
    if engine is not None:
        engine.invalidate()
    return stored


def delete_policy(store: PolicyStore, engine: PolicyEngine | None, policy_id: str) -> None:
    """Delete the policy; its alerts stay (they name it)."""
    if not store.delete(policy_id.lower()):
        raise NotFound(f"No policy with id {policy_id!r}.")
    if engine is not None:
        engine.invalidate()


def get_alert(alerts: AlertStore, alert_id: str) -> Alert:
    alert = alerts.get_alert(alert_id.lower()) if _looks_like_alert_id(alert_id) else None
    if alert is None:
        raise NotFound(f"No alert with id {alert_id!r}.")
    return alert


def change_alert(
    alerts: AlertStore, clock: Clock, principal: Principal, alert_id: str, document: dict[str, Any]
) -> Alert:
    """Resolve, dismiss or reopen an alert, with an optional comment."""
    change = parse_alert_change(document)

    def attempt() -> Alert:
        current = get_alert(alerts, alert_id)
        return alerts.replace_alert(
            replace(
                current,
                status=change.status,
                comment=change.comment if change.comment is not None else current.comment,
                updated_at=clock.now(),
                updated_by=_who(principal),
            )
        )

    return write_optimistically(attempt, what=f"The alert {alert_id}")


def _looks_like_alert_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdefABCDEF" for c in value)
