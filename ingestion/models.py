"""Pydantic models: the raw Azure Monitor Activity Log event and the normalized activity.

Two families live here:

* ``ActivityLogEvent`` / ``ActivityLogPage`` mirror the REST shape of the Activity Log
  (``EventData`` / ``EventDataCollection`` in azure-mgmt-monitor), camelCase keys as on the
  wire. They are *lenient*: every field is optional, unknown fields are kept, and a field of
  the wrong type is dropped (becomes ``None``) instead of failing the whole event, because
  real events are missing fields, carry nulls, and occasionally carry surprising types.
* ``Activity`` / ``ActivityUser`` are the normalized "user activity" (its fields and rules are
  in ``docs/normalization.md``), the shape the API answers with (``Activity.to_api()``).

Every datetime in these models is timezone-aware UTC; naive input is taken to be UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from core.timefmt import wire_time

UserType = Literal["user", "servicePrincipal", "managedIdentity", "unknown"]
ActionType = Literal["write", "delete", "action", "read", "other"]

APP_NAME: Final = "Microsoft Azure"
ACTION_TYPES: Final[frozenset[str]] = frozenset({"write", "delete", "action", "read"})

# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

# Azure writes 7 fractional digits ("2026-11-26T10:00:00.1234567Z"); datetime has 6.
_EXTRA_FRACTION = re.compile(r"([.,]\d{6})\d+")


def parse_timestamp(value: object) -> datetime | None:
    """Parse an ISO 8601 timestamp into an aware UTC datetime; ``None`` when it cannot.

    Accepts any number of fractional digits (digits past the sixth are truncated, never
    rounded up into the next second), ``Z``/``z`` or a numeric offset, and a space instead of
    ``T``. A timestamp without an offset is taken to be UTC. A ``datetime`` is converted to
    UTC the same way. Anything else (numbers, empty strings, garbage) gives ``None``.
    """
    parsed: datetime | None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:  # fast path: Python 3.11+ reads "2026-11-26T10:00:00.1234567Z" as it is
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = _parse_loosely(value)
    else:
        parsed = None
    if parsed is None:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+01:00
        return None


def _parse_loosely(value: str) -> datetime | None:
    """The forms ``fromisoformat`` refuses (on some Python versions): more than six
    fractional digits, a lower-case ``t``/``z``, surrounding blanks."""
    text = value.strip()
    if not text or len(text) > 64:
        return None
    text = _EXTRA_FRACTION.sub(r"\1", text)
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    if len(text) > 10 and text[10] == "t":
        text = text[:10] + "T" + text[11:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _utc_input(value: Any) -> Any:
    # Strings go through parse_timestamp (7-digit fractions); what it cannot parse is passed
    # on unchanged so pydantic reports a proper validation error.
    if isinstance(value, str):
        parsed = parse_timestamp(value)
        return value if parsed is None else parsed
    return value


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_utc_input),
    AfterValidator(_to_utc),
    PlainSerializer(wire_time, return_type=str, when_used="json"),
]


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and (not value or value.isspace()):
        return None
    return value


# An optional string of the normalized model; _ApiModel turns "" (or only whitespace) into null.
OptStr = str | None

# --------------------------------------------------------------------------------------------
# Normalized activity (docs/normalization.md)
# --------------------------------------------------------------------------------------------


class _ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _blanks_are_null(cls, data: Any) -> Any:
        # One pass over the input instead of a validator per field: this model is built for
        # every event of every page.
        if isinstance(data, dict):
            return {key: _blank_to_none(value) for key, value in data.items()}
        return data


class ActivityUser(_ApiModel):
    """Who acted: a user, a service principal, a managed identity, or unknown."""

    id: OptStr = None
    upn: OptStr = None
    name: OptStr = None
    type: UserType
    app_id: OptStr = Field(default=None, alias="appId")


class Activity(_ApiModel):
    """One Activity Log event, normalized; ``id`` is the event's ``eventDataId``."""

    id: str = Field(min_length=1)
    timestamp: UtcDatetime
    ingested_at: UtcDatetime = Field(alias="ingestedAt")
    app: str = APP_NAME
    tenant_id: OptStr = Field(default=None, alias="tenantId")
    subscription_id: str = Field(alias="subscriptionId", min_length=1)
    user: ActivityUser
    ip_address: OptStr = Field(default=None, alias="ipAddress")
    action: OptStr = None
    action_name: OptStr = Field(default=None, alias="actionName")
    action_type: ActionType = Field(alias="actionType")
    category: OptStr = None
    status: OptStr = None
    sub_status: OptStr = Field(default=None, alias="subStatus")
    resource_id: OptStr = Field(default=None, alias="resourceId")
    resource_group: OptStr = Field(default=None, alias="resourceGroup")
    resource_provider: OptStr = Field(default=None, alias="resourceProvider")
    resource_type: OptStr = Field(default=None, alias="resourceType")
    correlation_id: OptStr = Field(default=None, alias="correlationId")
    operation_id: OptStr = Field(default=None, alias="operationId")
    level: OptStr = None

    def to_api(self) -> dict[str, Any]:
        """The activity as the API answers it: camelCase keys, every key present (null when
        unknown), datetimes as UTC ISO 8601 ending in ``Z``."""
        return self.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------------------------
# Raw Activity Log event (REST shape of EventData), lenient
# --------------------------------------------------------------------------------------------


class _RawModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", coerce_numbers_to_str=True)


class LocalizableString(_RawModel):
    value: str | None = None
    localized_value: str | None = Field(default=None, alias="localizedValue")


class HttpRequestInfo(_RawModel):
    client_request_id: str | None = Field(default=None, alias="clientRequestId")
    client_ip_address: str | None = Field(default=None, alias="clientIpAddress")
    method: str | None = None


class SenderAuthorization(_RawModel):
    action: str | None = None
    role: str | None = None
    scope: str | None = None


RawTimestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]

_LOCALIZABLE_FIELDS: Final = frozenset(
    {
        "eventName",
        "category",
        "operationName",
        "resourceProviderName",
        "resourceType",
        "status",
        "subStatus",
    }
)
_MAX_REPAIRS: Final = 32


class ActivityLogEvent(_RawModel):
    """One Activity Log event as the REST API returns it (``EventData``), every field optional.

    Validation never fails for a JSON object: a value of the wrong type is dropped (for a
    dict field such as ``claims`` only the offending entry is dropped), a plain string where a
    ``{value, localizedValue}`` object belongs is read as its ``value``, and an unparseable
    timestamp becomes ``None``. Unknown fields are kept (``model_extra``).
    """

    authorization: SenderAuthorization | None = None
    caller: str | None = None
    channels: str | None = None
    claims: dict[str, str] | None = None
    correlation_id: str | None = Field(default=None, alias="correlationId")
    description: str | None = None
    event_data_id: str | None = Field(default=None, alias="eventDataId")
    event_name: LocalizableString | None = Field(default=None, alias="eventName")
    category: LocalizableString | None = None
    event_timestamp: RawTimestamp = Field(default=None, alias="eventTimestamp")
    submission_timestamp: RawTimestamp = Field(default=None, alias="submissionTimestamp")
    http_request: HttpRequestInfo | None = Field(default=None, alias="httpRequest")
    id: str | None = None
    level: str | None = None
    operation_id: str | None = Field(default=None, alias="operationId")
    operation_name: LocalizableString | None = Field(default=None, alias="operationName")
    properties: dict[str, Any] | None = None
    resource_group_name: str | None = Field(default=None, alias="resourceGroupName")
    resource_id: str | None = Field(default=None, alias="resourceId")
    resource_provider_name: LocalizableString | None = Field(default=None, alias="resourceProviderName")
    resource_type: LocalizableString | None = Field(default=None, alias="resourceType")
    status: LocalizableString | None = None
    sub_status: LocalizableString | None = Field(default=None, alias="subStatus")
    subscription_id: str | None = Field(default=None, alias="subscriptionId")
    tenant_id: str | None = Field(default=None, alias="tenantId")

    @model_validator(mode="wrap")
    @classmethod
    def _lenient(cls, data: Any, handler: ModelWrapValidatorHandler[ActivityLogEvent]) -> ActivityLogEvent:
        # Fast path: a well-formed event is validated entirely by pydantic-core.
        try:
            return handler(data)
        except ValidationError as first_error:
            if not isinstance(data, Mapping):
                raise
            error = first_error
        # Slow path: repair a private copy of the event (the caller's dict is never touched)
        # at every place pydantic complained about, then validate again.
        repaired: Any = _copy_json(data)
        for _ in range(_MAX_REPAIRS):
            for detail in error.errors():
                if not _repair(repaired, detail["loc"]):
                    raise error
            try:
                return handler(repaired)
            except ValidationError as again:
                error = again
        raise error


class ActivityLogPage(BaseModel):
    """One page of the Activity Log (``EventDataCollection``).

    Each event is as lenient as ``ActivityLogEvent``; an entry of ``value`` that is not an
    object fails the page. ``ingestion.normalize.parse_page`` reads pages without this model
    (it keeps the original event dicts and skips such entries).
    """

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    value: list[ActivityLogEvent] = Field(default_factory=list)
    next_link: str | None = Field(default=None, alias="nextLink")


def _field_names(*models: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {}
    for model in models:
        for name, info in model.model_fields.items():
            spellings = (name,) if info.alias is None else (info.alias, name)
            for spelling in spellings:
                names[spelling] = spellings
    return names


# alias or field name -> every spelling of that field, so a repair finds the key however the
# input spelled it (camelCase from the wire, snake_case when populated by name).
_SPELLINGS: Final = _field_names(ActivityLogEvent, LocalizableString, HttpRequestInfo, SenderAuthorization)


def _copy_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(item) for item in value]
    return value


def _repair(data: Any, loc: tuple[int | str, ...]) -> bool:
    """Fix the value at ``loc`` in ``data`` (in place); ``False`` when there is nothing to fix."""
    if not loc:
        return False
    parent: Any = data
    for step in loc[:-1]:
        key = _find_key(parent, step)
        if key is None:
            return True  # already removed by an earlier repair of the same pass
        parent = parent[key]
    key = _find_key(parent, loc[-1])
    if key is None:
        return True
    if len(loc) == 1 and isinstance(parent[key], str) and _SPELLINGS.get(key, ("",))[0] in _LOCALIZABLE_FIELDS:
        parent[key] = {"value": parent[key]}  # "operationName": "x/write" -> {"value": "x/write"}
        return True
    del parent[key]
    return True


def _find_key(container: Any, step: int | str) -> Any:
    if isinstance(container, dict):
        if step in container:
            return step
        for spelling in _SPELLINGS.get(step, ()) if isinstance(step, str) else ():
            if spelling in container:
                return spelling
        return None
    return None
