"""Normalize Azure Monitor Activity Log events into activities.

The rules are written down in ``docs/normalization.md``; this module implements them.

``normalize_event`` turns one raw event into an ``Activity``; ``parse_page`` does it for a
whole Activity Log page straight from the response bytes, keeping only ARM activities
(``is_arm_activity``: the ``Administrative`` category, or no category at all) and counting the
rest as skipped. Missing, null, empty or wrongly typed fields become ``None``; the only events
refused (``InvalidEvent``) are those that cannot be keyed or placed in time: no
``eventDataId`` or no parseable ``eventTimestamp`` (and, should a caller give none and the
event name none, no subscription ID at all).

Identity, in this order of precedence (the claims are the caller's ARM token's):

1. ``xms_mirid`` claim -> ``managedIdentity`` (even when ``idtyp`` is ``app``); its name is
   the last segment of that resource ID.
2. a ``upn`` claim, a caller holding ``@``, or ``idtyp`` = ``user`` (personal Microsoft
   accounts and some guests carry no ``upn``) -> ``user``.
3. app-only token: ``idtyp`` = ``app``, or an ``appid`` claim with a GUID caller (and no UPN,
   which step 2 already ruled out) -> ``servicePrincipal``.
4. anything else -> ``unknown``.

Decisions taken here (all deliberate, all tested):

* ``user.name`` is the short ``name`` claim, which in real Activity Log events is the display
  name ("Rob Robertson"). The long ``http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name``
  claim is NOT used: real events carry the UPN there ("rob@contoso.com"), not a name. Without
  ``name``, ``givenname`` and ``surname`` are joined with a space (either alone if only one is
  there). A managed identity is named after its ``xms_mirid`` resource.
* ``user.id``: for users the object ID, else the UPN, else the caller; the app ID is never a
  user's id, because for a user it names the client program (the portal, the CLI), so falling
  back to it would merge every user of that program into one account. For service principals
  and managed identities: object ID, else app ID, else caller. For ``unknown``: the caller
  ("the caller kept as the id"), else object ID, else app ID.
* ``user.appId``: the ``appid`` claim for service principals, managed identities and
  ``unknown`` principals (for which it is the best clue there is); null for users.
* Claims are looked up by the names real ARM (v1) tokens use, with the short v2 names as a
  fallback: ``oid``, ``upn``, ``given_name``/``family_name``, ``tid``, ``azp`` for ``appid``.
* ``tenantId``: the event's, else the token's tenant claim.
* ``subscriptionId``: the event's, else the ``subscription_id`` argument, else read from the
  event's ``resourceId``/``id`` path (``/subscriptions/<id>/...``).
* ``resourceType``/``resourceProvider``: the event's, except where the event is a cascaded
  child operation (a resource-group delete logs one delete per contained resource with the
  parent's ``resourceType``): when the type the ``operationName`` acts on is the type of the
  event's own ``resourceId`` and the event's ``resourceType`` names another one, the
  operation's type (and its namespace as the provider) is taken. A missing type or provider
  is read from the ``resourceId`` (else the operation name).
* Strings that are empty or only whitespace are null.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

import pydantic_core
from pydantic import ValidationError

from ingestion.models import (
    ActionType,
    Activity,
    ActivityLogEvent,
    ActivityUser,
    LocalizableString,
    UserType,
    parse_timestamp,
)

logger = logging.getLogger(__name__)

CLAIM_UPN: Final = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
CLAIM_OBJECT_ID: Final = "http://schemas.microsoft.com/identity/claims/objectidentifier"
CLAIM_GIVEN_NAME: Final = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
CLAIM_SURNAME: Final = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
CLAIM_TENANT_ID: Final = "http://schemas.microsoft.com/identity/claims/tenantid"

_GUID: Final = re.compile(r"\{?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?")
_ACTION_TYPES: Final[dict[str, ActionType]] = {"write": "write", "delete": "delete", "action": "action", "read": "read"}
_SUBSCRIPTION_IN_PATH: Final = re.compile(r"/subscriptions/([^/]+)", re.IGNORECASE)
# The one category that is ARM activity; events without any category (older ones) are too.
ARM_CATEGORY: Final = "administrative"
RESOURCE_GROUP_TYPE: Final = "Microsoft.Resources/subscriptions/resourceGroups"
SUBSCRIPTION_TYPE: Final = "Microsoft.Resources/subscriptions"


class InvalidEvent(ValueError):
    """An Activity Log event that cannot become an activity (no ``eventDataId``, no
    parseable ``eventTimestamp``, or no subscription at all)."""

    def __init__(self, reason: str, *, event_data_id: str | None = None) -> None:
        super().__init__(reason if event_data_id is None else f"{reason} (eventDataId {event_data_id})")
        self.reason = reason
        self.event_data_id = event_data_id


class InvalidPage(ValueError):
    """An Activity Log response body that is not a page: not JSON, not a JSON object, a
    ``value`` that is not a list, or a ``nextLink`` that is not a string."""


class SkippedEvent(NamedTuple):
    """An event of a page that ``parse_page`` could not normalize, and why."""

    position: int
    event_data_id: str | None
    reason: str
    raw: Any


class ParsedPage(NamedTuple):
    """One Activity Log page, parsed.

    ``items``: for each ARM activity of the page, in page order, the original event (as parsed
    from the JSON, unchanged) with its ``Activity``. ``next_link``: the page's ``nextLink``
    (``None`` on the last page). ``skipped``: how many events of the page did not become an
    activity, whatever the reason: another category than ``Administrative`` (``Policy``,
    ``ServiceHealth``, ...), or an event that cannot be normalized; so
    ``len(items) + skipped`` is the number of events on the page. ``invalid``: the events among
    the skipped ones that cannot be normalized, with the reason (they are logged at WARNING).
    ``skipped_at``: the ``eventTimestamp`` of each skipped event (``None`` when it has none).
    """

    items: list[tuple[dict[str, Any], Activity]]
    next_link: str | None
    skipped: int = 0
    invalid: tuple[SkippedEvent, ...] = ()
    skipped_at: tuple[datetime | None, ...] = ()

    def skipped_after(self, when: datetime) -> int:
        """The skipped events of times after `when` (or of no time): those a re-read of the time up
        to `when` has not seen before."""
        return sum(1 for at in self.skipped_at if at is None or at > when)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """A non-blank string, else ``None`` ("" and "   " are null, so are non-strings)."""
    if isinstance(value, str) and value and not value.isspace():
        return value
    return None


def _value(field: LocalizableString | None) -> str | None:
    return None if field is None else _text(field.value)


def _localized(field: LocalizableString | None) -> str | None:
    return None if field is None else _text(field.localized_value)


def _claim(claims: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        found = _text(claims.get(name))
        if found is not None:
            return found
    return None


def is_guid(value: str | None) -> bool:
    return value is not None and _GUID.fullmatch(value.strip()) is not None


def action_type_of(operation: str | None) -> ActionType:
    """``write``/``delete``/``action``/``read`` from the operation name's last segment."""
    if operation is None:
        return "other"
    return _ACTION_TYPES.get(operation.strip().rsplit("/", 1)[-1].lower(), "other")


def _last_segment(resource_id: str) -> str | None:
    return _text(resource_id.strip().rstrip("/").rsplit("/", 1)[-1])


def _subscription_from_path(*paths: str | None) -> str | None:
    for path in paths:
        if path:
            match = _SUBSCRIPTION_IN_PATH.search(path)
            if match and _text(match.group(1)):
                return match.group(1)
    return None


def category_of(raw: Mapping[str, Any] | ActivityLogEvent) -> str | None:
    """The ``category.value`` of a raw event or a parsed one; ``None`` when there is none.

    A plain string is read as the value (as the lenient model does); any other type is no
    category at all.
    """
    if isinstance(raw, ActivityLogEvent):
        return _value(raw.category)
    category = raw.get("category")
    if isinstance(category, Mapping):
        category = category.get("value")
    return _text(category)


def is_arm_activity(raw: Mapping[str, Any] | ActivityLogEvent) -> bool:
    """Whether an event is an ARM activity: category ``Administrative`` (any case), or none.

    Everything else (``Policy``, ``ServiceHealth``, ``ResourceHealth``, ``Alert``,
    ``Autoscale``, ``Security``, ``Recommendation`` and any category added later) is not user
    activity.
    """
    category = category_of(raw)
    return category is None or category.strip().lower() == ARM_CATEGORY


def resource_type_of_id(resource_id: str | None) -> str | None:
    """The resource type an ARM resource ID names (``Microsoft.Compute/virtualMachines``).

    The last ``/providers/<namespace>/<type>/<name>[/<child type>/<name>...]`` part decides,
    so extension resources (locks, role assignments on a resource) get their own type. A
    resource group is ``Microsoft.Resources/subscriptions/resourceGroups``, a subscription
    ``Microsoft.Resources/subscriptions``; anything else is ``None``.
    """
    if resource_id is None:
        return None
    parts = [part for part in resource_id.strip().split("/") if part]
    lowered = [part.lower() for part in parts]
    for index in range(len(parts) - 3, -1, -1):
        if lowered[index] == "providers":
            types = parts[index + 2 :: 2]
            return "/".join([parts[index + 1], *types])
    if len(parts) in (3, 4) and lowered[0] == "subscriptions" and lowered[2] == "resourcegroups":
        return RESOURCE_GROUP_TYPE if len(parts) == 4 else None
    if len(parts) == 2 and lowered[0] == "subscriptions":
        return SUBSCRIPTION_TYPE
    return None


def resource_type_of_operation(operation: str | None) -> str | None:
    """The resource type an operation name acts on: the name without its verb.

    ``Microsoft.Compute/virtualMachines/delete`` and ``.../virtualMachines/start/action`` both
    give ``Microsoft.Compute/virtualMachines``.
    """
    if operation is None:
        return None
    parts = [part for part in operation.strip().split("/") if part]
    drop = 2 if parts and parts[-1].lower() == "action" else 1
    if len(parts) - drop < 2:
        return None
    return "/".join(parts[:-drop])


def _resource_type_and_provider(event: ActivityLogEvent, action: str | None) -> tuple[str | None, str | None]:
    """``resourceType`` and ``resourceProvider`` of an event (rules in the module doc)."""
    event_type = _value(event.resource_type)
    provider = _value(event.resource_provider_name)
    id_type = resource_type_of_id(_text(event.resource_id))
    op_type = resource_type_of_operation(action)
    own_type = op_type if op_type is not None and id_type is not None and op_type.lower() == id_type.lower() else None
    if own_type is not None and (event_type is None or event_type.lower() != own_type.lower()):
        # A cascaded child (or an event without a type): the resource it acts on is its own.
        namespace = own_type.split("/", 1)[0]
        return own_type, provider if provider is not None and provider.lower() == namespace.lower() else namespace
    resource_type = event_type or id_type or op_type
    if provider is None and resource_type is not None:
        provider = resource_type.split("/", 1)[0]
    return resource_type, provider


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------


def identify(caller: str | None, claims: Mapping[str, str] | None) -> ActivityUser:
    """Classify who acted, from the event's ``caller`` and ``claims`` (rules in the module doc)."""
    caller = _text(caller)
    claims = claims or {}
    mirid = _claim(claims, "xms_mirid")
    upn_claim = _claim(claims, CLAIM_UPN, "upn")
    caller_upn = caller if caller is not None and "@" in caller else None
    upn = upn_claim or caller_upn
    object_id = _claim(claims, CLAIM_OBJECT_ID, "oid")
    app_id = _claim(claims, "appid", "azp")
    id_type = _claim(claims, "idtyp")

    user_type: UserType
    if mirid is not None:
        user_type = "managedIdentity"
    elif upn is not None or (id_type is not None and id_type.strip().lower() == "user"):
        user_type = "user"
    elif (id_type is not None and id_type.strip().lower() == "app") or (app_id is not None and is_guid(caller)):
        user_type = "servicePrincipal"
    else:
        user_type = "unknown"

    name: str | None = None
    if mirid is not None:
        name = _last_segment(mirid)
    if name is None:
        name = _claim(claims, "name")
    if name is None:
        parts = [
            part
            for part in (
                _claim(claims, CLAIM_GIVEN_NAME, "given_name"),
                _claim(claims, CLAIM_SURNAME, "family_name"),
            )
            if part is not None
        ]
        name = " ".join(parts) if parts else None

    principal_id: str | None
    if user_type == "user":
        principal_id = object_id or upn or caller
    elif user_type == "unknown":
        principal_id = caller or object_id or app_id
    else:
        principal_id = object_id or app_id or caller

    return ActivityUser(
        id=principal_id,
        upn=upn,
        name=name,
        type=user_type,
        app_id=None if user_type == "user" else app_id,
    )


# --------------------------------------------------------------------------------------------
# Events and pages
# --------------------------------------------------------------------------------------------


def activity_from_event(
    event: ActivityLogEvent, *, ingested_at: datetime, subscription_id: str | None = None
) -> Activity:
    """Normalize an already validated ``ActivityLogEvent``; see ``normalize_event``."""
    event_data_id = _text(event.event_data_id)
    if event_data_id is None:
        raise InvalidEvent("event has no eventDataId")
    if event.event_timestamp is None:
        raise InvalidEvent("event has no parseable eventTimestamp", event_data_id=event_data_id)
    subscription = (
        _text(event.subscription_id)
        or _text(subscription_id)
        or _subscription_from_path(_text(event.resource_id), _text(event.id))
    )
    if subscription is None:
        raise InvalidEvent("event names no subscription and none was given", event_data_id=event_data_id)

    claims = event.claims or {}
    http_request = event.http_request
    ip_address = _text(http_request.client_ip_address) if http_request is not None else None
    action = _value(event.operation_name)
    resource_type, resource_provider = _resource_type_and_provider(event, action)

    return Activity(
        id=event_data_id,
        timestamp=event.event_timestamp,
        ingested_at=ingested_at,
        tenant_id=_text(event.tenant_id) or _claim(claims, CLAIM_TENANT_ID, "tid"),
        subscription_id=subscription,
        user=identify(event.caller, claims),
        ip_address=ip_address or _claim(claims, "ipaddr"),
        action=action,
        action_name=_localized(event.operation_name),
        action_type=action_type_of(action),
        category=_value(event.category),
        status=_value(event.status),
        sub_status=_value(event.sub_status),
        resource_id=_text(event.resource_id),
        resource_group=_text(event.resource_group_name),
        resource_provider=resource_provider,
        resource_type=resource_type,
        correlation_id=_text(event.correlation_id),
        operation_id=_text(event.operation_id),
        level=_text(event.level),
    )


def normalize_event(
    raw: Mapping[str, Any] | ActivityLogEvent,
    *,
    ingested_at: datetime,
    subscription_id: str | None = None,
) -> Activity:
    """Normalize one raw Activity Log event (the JSON object of the REST API).

    ``subscription_id`` is used when the event does not name its subscription.
    Raises ``InvalidEvent`` when the event has no ``eventDataId`` or no parseable
    ``eventTimestamp`` (or no subscription can be found at all); any other missing,
    null, empty or wrongly typed field just becomes ``None``.
    """
    if isinstance(raw, ActivityLogEvent):
        event = raw
    elif isinstance(raw, Mapping):
        try:
            event = ActivityLogEvent.model_validate(raw)
        except ValidationError as error:  # the lenient model should not let this happen
            raise InvalidEvent(f"event cannot be read: {error.error_count()} validation errors") from error
    else:
        raise InvalidEvent(f"event is a {type(raw).__name__}, not a JSON object")
    return activity_from_event(event, ingested_at=ingested_at, subscription_id=subscription_id)


def parse_page(
    body: bytes | bytearray | str,
    *,
    ingested_at: datetime,
    subscription_id: str | None = None,
) -> ParsedPage:
    """Parse one Activity Log page from the response body into a ``ParsedPage``.

    Only ARM activities become items (``is_arm_activity``); events of every other category
    are read and counted in ``skipped``, and so are events that cannot be normalized
    (``InvalidEvent``, or an entry that is not an object), which are also listed in
    ``invalid`` and logged (one WARNING per page with the count and the first reasons).
    A body that is not a page raises ``InvalidPage``: not JSON, not an object, a ``value``
    that is not a list, or a ``nextLink`` that is neither a string nor null (guessing "no next
    page" there would silently lose the rest of the window). A missing or null ``value`` is an
    empty page.
    """
    try:
        document = pydantic_core.from_json(body)
    except ValueError as error:
        raise InvalidPage(f"Activity Log response is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidPage(f"Activity Log response is a JSON {type(document).__name__}, not an object")
    events = document.get("value")
    if events is None:
        events = []
    elif not isinstance(events, list):
        raise InvalidPage(f"Activity Log response 'value' is a {type(events).__name__}, not a list")
    next_link = document.get("nextLink")
    if next_link is not None and not isinstance(next_link, str):
        raise InvalidPage(f"Activity Log response 'nextLink' is a {type(next_link).__name__}, not a string")

    pairs: list[tuple[dict[str, Any], Activity]] = []
    invalid: list[SkippedEvent] = []
    other_categories: Counter[str] = Counter()
    skipped_at: list[datetime | None] = []
    for index, raw in enumerate(events):
        if not isinstance(raw, dict):
            invalid.append(SkippedEvent(index, None, f"entry is a {type(raw).__name__}, not an object", raw))
            skipped_at.append(None)
            continue
        if not is_arm_activity(raw):
            other_categories[category_of(raw) or ""] += 1
            skipped_at.append(parse_timestamp(raw.get("eventTimestamp")))
            continue
        try:
            activity = normalize_event(raw, ingested_at=ingested_at, subscription_id=subscription_id)
        except InvalidEvent as error:
            event_data_id = raw.get("eventDataId")
            invalid.append(
                SkippedEvent(index, event_data_id if isinstance(event_data_id, str) else None, str(error), raw)
            )
            skipped_at.append(parse_timestamp(raw.get("eventTimestamp")))
            continue
        pairs.append((raw, activity))

    if other_categories:
        logger.debug(
            "Skipped %d Activity Log events of subscription %s that are not ARM activities: %s",
            other_categories.total(),
            subscription_id or "(not given)",
            ", ".join(f"{count} {name}" for name, count in other_categories.most_common()),
        )
    if invalid:
        logger.warning(
            "Skipped %d of %d Activity Log events of subscription %s that cannot be normalized: %s",
            len(invalid),
            len(events),
            subscription_id or "(not given)",
            "; ".join(f"#{item.position}: {item.reason}" for item in invalid[:5]),
        )
    skipped = other_categories.total() + len(invalid)
    return ParsedPage(pairs, _text(next_link), skipped, tuple(invalid), tuple(skipped_at))
