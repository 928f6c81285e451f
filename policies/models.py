"""Activity policies and alerts: the definitions callers send (validated with pydantic) and the records kept.

A policy is a filter over normalized activity fields (see `policies.matching`) and one of two kinds:
``singleActivity`` (every matching activity raises an alert) or ``repeatedActivity`` (at least
``repeated.count`` matching activities by the same principal within ``repeated.windowMinutes``,
optionally of the same action, raise one alert for that burst). Every way a definition can be wrong
is an ``InvalidInput`` naming the field (``filter.ipInRanges.0``, ``repeated.count``...).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput
from core.timefmt import wire_time
from ingestion.models import ActionType, UserType

Severity = Literal["low", "medium", "high"]
Kind = Literal["singleActivity", "repeatedActivity"]
AlertStatus = Literal["open", "resolved", "dismissed"]
Delivery = Literal["none", "pending", "delivered", "undelivered"]

SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high")
ALERT_STATUSES: tuple[AlertStatus, ...] = ("open", "resolved", "dismissed")
MAX_VALUES = 50  # values per filter field
MAX_ALERT_ACTIVITIES = 100  # activity ids an alert keeps (its count goes on)


def _network(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address or CIDR range") from None
    return value


Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network)]
Text = Annotated[str, Field(min_length=1, max_length=512)]
Values = Annotated[list[Text], Field(min_length=1, max_length=MAX_VALUES)]


class _Strict(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", str_strip_whitespace=True)


class ActivityFilter(_Strict):
    """Which activities a policy looks at: every field given must match (any of its values)."""

    users: Values | None = None  # user object id or UPN (case-insensitive)
    user_types: Annotated[list[UserType], Field(min_length=1)] | None = Field(None, alias="userTypes")
    actions: Values | None = None  # wildcards: `*` any run of characters, `?` one
    action_types: Annotated[list[ActionType], Field(min_length=1)] | None = Field(None, alias="actionTypes")
    statuses: Values | None = None
    subscriptions: Values | None = None
    resource_groups: Values | None = Field(None, alias="resourceGroups")
    resource_providers: Values | None = Field(None, alias="resourceProviders")  # wildcards
    resource_types: Values | None = Field(None, alias="resourceTypes")  # wildcards
    categories: Values | None = None
    ip_in_ranges: Annotated[list[Network], Field(min_length=1, max_length=MAX_VALUES)] | None = Field(
        None, alias="ipInRanges"
    )
    ip_not_in_ranges: Annotated[list[Network], Field(min_length=1, max_length=MAX_VALUES)] | None = Field(
        None, alias="ipNotInRanges"
    )
    first_activity_of_principal: bool = Field(False, alias="firstActivityOfPrincipal")


class RepeatedActivity(_Strict):
    count: int = Field(ge=2, le=MAX_ALERT_ACTIVITIES)
    window_minutes: int = Field(alias="windowMinutes", ge=1, le=1440)
    same_action: bool = Field(False, alias="sameAction")


class PolicyDefinition(_Strict):
    """What a caller sends to create or replace a policy (camelCase on the wire)."""

    name: str = Field(min_length=1, max_length=128)
    description: str | None = Field(None, max_length=1024)
    severity: Severity
    enabled: bool = True
    kind: Kind
    filter: ActivityFilter = Field(default_factory=ActivityFilter)
    repeated: RepeatedActivity | None = None
    webhook_url: str | None = Field(None, alias="webhookUrl", max_length=2048)

    @field_validator("webhook_url")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL (alerts are never sent over plain http)")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; the body is signed instead")
        return value

    @model_validator(mode="after")
    def _kind_settings(self) -> PolicyDefinition:
        if self.kind == "repeatedActivity" and self.repeated is None:
            raise _FieldError("repeated", "is required for a repeatedActivity policy (count and windowMinutes)")
        if self.kind == "singleActivity" and self.repeated is not None:
            raise _FieldError("repeated", "is only for repeatedActivity policies")
        if self.kind == "repeatedActivity" and self.filter.first_activity_of_principal:
            raise _FieldError("filter.firstActivityOfPrincipal", "is only for singleActivity policies")
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


class _FieldError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def _invalid_input(exc: ValidationError, what: str) -> InvalidInput:
    """The first error of a body's validation, naming its field (`what`: the body, for unknown fields)."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldError):
        loc = ".".join(p for p in (loc, cause.field_name) if p)
        message = str(cause)
    if first.get("type") == "extra_forbidden":
        message = f"is not a field of {what}"
    if first.get("type") == "missing":
        message = "is required"
    return InvalidInput(loc or "body", message)


def parse_definition(document: Any) -> PolicyDefinition:
    """A definition from a JSON body; InvalidInput naming the first bad field."""
    try:
        return PolicyDefinition.model_validate(document)
    except ValidationError as exc:
        raise _invalid_input(exc, "a policy definition") from None


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRecord:
    """A stored policy. `effective_from` is when it was created or last changed: only activities
    that happen at or after it are evaluated. `version` grows with every change (the daily alert
    count is per version, so a change or a re-enable starts it afresh)."""

    id: str
    definition: PolicyDefinition
    created_at: datetime
    effective_from: datetime
    created_by: str | None = None
    updated_by: str | None = None
    version: int = 1
    paused_at: datetime | None = None
    paused_message: str | None = None
    etag: str | None = None

    @property
    def active(self) -> bool:
        return self.definition.enabled and self.paused_at is None

    @property
    def state(self) -> str:
        if not self.definition.enabled:
            return "disabled"
        return "paused" if self.paused_at is not None else "enabled"

    def paused(self, when: datetime, message: str) -> PolicyRecord:
        return replace(self, paused_at=when, paused_message=message)

    def to_api(self, *, show_webhook_url: bool = False) -> dict[str, Any]:
        """The policy as the API answers; `webhookUrl` (which may carry its own secret) only if shown.

        Administrators see the whole URL; every other reader sees `webhookHost` alone, with
        `webhookUrl` left out of the answer.
        """
        definition = self.definition.to_json()
        url = definition.pop("webhookUrl")
        return {
            "id": self.id,
            **definition,
            **({"webhookUrl": url} if show_webhook_url else {}),
            "webhookHost": webhook_host(url),
            "state": self.state,
            "pausedAt": wire_time(self.paused_at) if self.paused_at else None,
            "pausedMessage": self.paused_message,
            "createdAt": wire_time(self.created_at),
            "createdBy": self.created_by,
            "updatedAt": wire_time(self.effective_from),
            "updatedBy": self.updated_by,
            "version": self.version,
        }


@dataclass(frozen=True)
class AlertUser:
    id: str | None = None
    upn: str | None = None
    type: str = "unknown"


@dataclass(frozen=True)
class Alert:
    """An alert: raised once per (policy, activity) or per (policy, principal, burst); see `policies.engine`."""

    id: str
    policy_id: str
    policy_name: str
    severity: Severity
    kind: Kind
    title: str
    user: AlertUser
    first_activity_at: datetime  # the alert's time: listings are newest first by it
    last_activity_at: datetime
    activity_ids: tuple[str, ...]
    activity_count: int
    raised_at: datetime
    status: AlertStatus = "open"
    comment: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    delivery: Delivery = "none"
    delivery_message: str | None = None
    # The queue message that made (or makes) the first delivery attempt: a second first message
    # for the alert (a burst grown before that attempt) stops, so there is one delivery chain.
    delivery_claim: str | None = None
    etag: str | None = field(default=None, compare=False)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policyId": self.policy_id,
            "policyName": self.policy_name,
            "severity": self.severity,
            "kind": self.kind,
            "title": self.title,
            "status": self.status,
            "comment": self.comment,
            "user": {"id": self.user.id, "upn": self.user.upn, "type": self.user.type},
            "time": wire_time(self.first_activity_at),
            "lastActivityAt": wire_time(self.last_activity_at),
            "activityCount": self.activity_count,
            "activityIds": list(self.activity_ids),
            "raisedAt": wire_time(self.raised_at),
            "updatedAt": wire_time(self.updated_at) if self.updated_at else None,
            "updatedBy": self.updated_by,
            "delivery": {"status": self.delivery, "message": self.delivery_message},
        }


def webhook_host(url: str | None) -> str | None:
    """The host (and port, if any) of a webhook URL: what a reader who is no administrator sees."""
    if not url:
        return None
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rpartition("@")[2] or None


def ids_json(ids: tuple[str, ...]) -> str:
    return json.dumps(list(ids[:MAX_ALERT_ACTIVITIES]), separators=(",", ":"))


class AlertChange(_Strict):
    """The body of PATCH /api/alerts/{id}."""

    status: AlertStatus
    comment: str | None = Field(None, max_length=1024)


def parse_alert_change(document: Any) -> AlertChange:
    try:
        return AlertChange.model_validate(document)
    except ValidationError as exc:
        raise _invalid_input(exc, "an alert change (status, comment)") from None
