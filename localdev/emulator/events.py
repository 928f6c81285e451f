"""Synthetic Azure Monitor Activity Log events, generated lazily and deterministically.

Time is cut into fixed slots (15 minutes). The operations that start in one (seed, subscription,
slot) are always the same (their later events may fall in the next slot), so any range can be served
without generating anything in advance, and the ground truth a test asks for is exactly what the API
serves.

Each operation (a write, delete or action on a resource) logs a `BeginRequest`/`Started` event and an
`EndRequest` event a few seconds later that share `correlationId` and `operationId`; accepted
(asynchronous) operations usually log a third, `Succeeded`, event later; reads log a single event.
Every event surfaces (its `submissionTimestamp`) between 10 seconds and `max_surface_delay` after its
`eventTimestamp`, and a good share take the maximum, so late events are common.

Rates: operation `k` of a slot exists when `k < N(rate at its start time)`, where N grows with the
rate. Changing the rate (or a subscription's state) from "now" on therefore never changes an event
that already happened, while the generator stays stateless.
"""

from __future__ import annotations

import base64
import bisect
import functools
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .tenant import (
    CLIENT_APPS,
    POLICY_INSIGHTS_APP_ID,
    Actor,
    Directory,
    SubscriptionRecord,
    stable_guid,
    stable_int,
)
from .timefmt import TICKS_PER_SECOND, dotnet_ticks, format_ticks, format_ticks_digits, truncate_ticks

SLOT_SECONDS = 900
SLOT_TICKS = SLOT_SECONDS * TICKS_PER_SECOND
# Average number of events one generated operation brings (used to turn events/hour into operations):
# its own (about 2.1), Azure Policy's audits and cascaded deletes it causes, and its share of the
# platform events of other categories.
EVENTS_PER_OPERATION = 2.44
MIN_SURFACE_DELAY_TICKS = 10 * TICKS_PER_SECOND

# (ticks, eventDataId, submission ticks, event)
StoredEvent = tuple[int, str, int, dict[str, Any]]
Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class OperationTemplate:
    provider: str
    type_path: str  # e.g. "virtualMachines" or "networkSecurityGroups/securityRules"
    verb: str  # "write", "delete", "read" or "<name>/action"
    localized: str
    weight: float
    scope: str = "resource"  # "resource", "resourceGroup", "roleAssignment", "deployment"

    @property
    def operation_name(self) -> str:
        if self.scope == "resourceGroup":
            return f"{self.provider}/subscriptions/resourceGroups/{self.verb}"
        return f"{self.provider}/{self.type_path}/{self.verb}"

    @property
    def resource_type(self) -> str:
        if self.scope == "resourceGroup":
            return f"{self.provider}/subscriptions/resourceGroups"
        return f"{self.provider}/{self.type_path}"

    @property
    def kind(self) -> str:
        return self.verb.rsplit("/", 1)[-1]

    @property
    def method(self) -> str:
        return {"write": "PUT", "delete": "DELETE", "read": "GET"}.get(self.kind, "POST")


OPERATIONS: tuple[OperationTemplate, ...] = (
    OperationTemplate("Microsoft.Compute", "virtualMachines", "write", "Create or Update Virtual Machine", 6),
    OperationTemplate("Microsoft.Compute", "virtualMachines", "delete", "Delete Virtual Machine", 1.2),
    OperationTemplate("Microsoft.Compute", "virtualMachines", "start/action", "Start Virtual Machine", 3),
    OperationTemplate("Microsoft.Compute", "virtualMachines", "restart/action", "Restart Virtual Machine", 2),
    OperationTemplate("Microsoft.Compute", "virtualMachines", "deallocate/action", "Deallocate Virtual Machine", 2),
    OperationTemplate("Microsoft.Compute", "disks", "write", "Create or Update Disk", 1.5),
    OperationTemplate("Microsoft.Storage", "storageAccounts", "write", "Create/Update Storage Account", 3),
    OperationTemplate("Microsoft.Storage", "storageAccounts", "delete", "Delete Storage Account", 0.6),
    OperationTemplate("Microsoft.Storage", "storageAccounts", "listKeys/action", "List Storage Account Keys", 4),
    OperationTemplate(
        "Microsoft.Storage", "storageAccounts", "regenerateKey/action", "Regenerate Storage Account Keys", 0.5
    ),
    OperationTemplate(
        "Microsoft.Network", "networkSecurityGroups", "write", "Create or Update Network Security Group", 2
    ),
    OperationTemplate(
        "Microsoft.Network", "networkSecurityGroups/securityRules", "write", "Create or Update Security Rule", 2.5
    ),
    OperationTemplate("Microsoft.Network", "networkSecurityGroups/securityRules", "delete", "Delete Security Rule", 1),
    OperationTemplate("Microsoft.Network", "virtualNetworks", "write", "Create or Update Virtual Network", 1),
    OperationTemplate("Microsoft.Network", "publicIPAddresses", "write", "Create or Update Public Ip Address", 1),
    OperationTemplate("Microsoft.Network", "publicIPAddresses", "delete", "Delete Public Ip Address", 0.5),
    OperationTemplate("Microsoft.KeyVault", "vaults", "write", "Update Key Vault", 1.5),
    OperationTemplate("Microsoft.KeyVault", "vaults/accessPolicies", "write", "Update Access Policy", 1),
    OperationTemplate("Microsoft.KeyVault", "vaults", "delete", "Delete Key Vault", 0.3),
    OperationTemplate("Microsoft.KeyVault", "vaults", "read", "View Key Vault", 0.6),
    OperationTemplate("Microsoft.Web", "sites", "write", "Create or Update Web App", 2.5),
    OperationTemplate("Microsoft.Web", "sites", "restart/action", "Restart Web App", 2),
    OperationTemplate("Microsoft.Web", "sites/config", "write", "Update Web App Config", 1.5),
    OperationTemplate("Microsoft.Web", "sites", "publishxml/action", "Get web app publishing profile", 1),
    OperationTemplate("Microsoft.Web", "sites", "delete", "Delete Web App", 0.4),
    OperationTemplate("Microsoft.Sql", "servers/firewallRules", "write", "Create/Update server firewall rule", 1),
    OperationTemplate("Microsoft.Sql", "servers/databases", "write", "Create/Update Database", 1),
    OperationTemplate("Microsoft.ContainerService", "managedClusters", "write", "Create or Update Managed Cluster", 1),
    OperationTemplate(
        "Microsoft.ContainerService",
        "managedClusters",
        "listClusterUserCredential/action",
        "List clusterUser credential",
        2.5,
    ),
    OperationTemplate(
        "Microsoft.Authorization", "roleAssignments", "write", "Create role assignment", 1.5, "roleAssignment"
    ),
    OperationTemplate(
        "Microsoft.Authorization", "roleAssignments", "delete", "Delete role assignment", 0.6, "roleAssignment"
    ),
    OperationTemplate("Microsoft.Resources", "", "write", "Update resource group", 1.2, "resourceGroup"),
    OperationTemplate("Microsoft.Resources", "", "delete", "Delete resource group", 0.3, "resourceGroup"),
    OperationTemplate("Microsoft.Resources", "deployments", "write", "Create Deployment", 2.5, "deployment"),
)
_OP_WEIGHTS = tuple(op.weight for op in OPERATIONS)
_OP_CUM = tuple(sum(_OP_WEIGHTS[: i + 1]) for i in range(len(_OP_WEIGHTS)))
OPERATIONS_BY_NAME = {op.operation_name.lower(): op for op in OPERATIONS}

_NAME_PREFIX = {
    "virtualMachines": "vm",
    "disks": "disk",
    "networkSecurityGroups": "nsg",
    "virtualNetworks": "vnet",
    "publicIPAddresses": "pip",
    "vaults": "kv",
    "sites": "app",
    "servers": "sql",
    "managedClusters": "aks",
}
_CHILD_NAMES = {
    "securityRules": ("allow-https", "allow-ssh-admin", "deny-all-inbound", "allow-rdp-jump"),
    "accessPolicies": ("add", "replace", "remove"),
    "config": ("web", "appsettings", "connectionstrings"),
    "firewallRules": ("AllowAllWindowsAzureIps", "office-egress", "ClientIPAddress_2024-5-1"),
    "databases": ("db-orders", "db-inventory", "db-analytics"),
}

_FAILURES = (
    # (subStatus value, HTTP code, error code, message, level)
    ("Conflict", 409, "Conflict", "Another operation is in progress on the resource.", "Error"),
    ("BadRequest", 400, "InvalidParameter", "The value of parameter 'sku' is invalid.", "Error"),
    ("Forbidden", 403, "AuthorizationFailed", "The client does not have authorization to perform action.", "Error"),
    ("NotFound", 404, "ResourceNotFound", "The Resource was not found.", "Error"),
    ("TooManyRequests", 429, "TooManyRequests", "The request is being throttled.", "Warning"),
)
_SUCCESS_CODES = {"write": (("Created", 201), ("OK", 200)), "delete": (("OK", 200), ("NoContent", 204))}

_BEGIN = {"value": "BeginRequest", "localizedValue": "Begin request"}
_END = {"value": "EndRequest", "localizedValue": "End request"}
_ADMINISTRATIVE = {"value": "Administrative", "localizedValue": "Administrative"}
_RESOURCE_GROUP_DELETE = "Microsoft.Resources/subscriptions/resourceGroups/delete"
_RESOURCE_GROUP_TYPE = "Microsoft.Resources/subscriptions/resourceGroups"
# Fractional digits of eventTimestamp: mostly ARM's seven, sometimes fewer (as real events show).
_DIGITS = ((0.86, 7), (0.92, 6), (0.96, 2), (1.0, 0))
# Share of Administrative events without tenantId, resourceType or category (older events).
_NO_TENANT, _NO_TYPE, _NO_CATEGORY = 0.3, 0.03, 0.03
# Platform events of other categories per generated operation, and their mix.
OTHER_EVENTS_PER_OPERATION = 0.25
_OTHER_CATEGORIES = (
    ("ServiceHealth", 2.0),
    ("ResourceHealth", 3.0),
    ("Alert", 2.0),
    ("Autoscale", 2.0),
    ("Security", 1.0),
    ("Recommendation", 2.0),
)
_OTHER_CUM = tuple(sum(w for _, w in _OTHER_CATEGORIES[: i + 1]) for i in range(len(_OTHER_CATEGORIES)))
_HEALTH_STATUSES = ("Active", "Resolved", "In Progress", "Updated")
# (provider, type, name prefix) of the resources a resource-group delete takes with it.
_CASCADED = (
    ("Microsoft.Compute", "virtualMachines", "vm"),
    ("Microsoft.Compute", "disks", "disk"),
    ("Microsoft.Network", "networkInterfaces", "nic"),
    ("Microsoft.Network", "publicIPAddresses", "pip"),
    ("Microsoft.Storage", "storageAccounts", "st"),
    ("Microsoft.Web", "sites", "app"),
)
ARM_CATEGORY = "administrative"


def is_arm_event(event: dict[str, Any]) -> bool:
    """An ARM activity: category Administrative (any case), or no category at all (older events)."""
    category = event.get("category")
    if isinstance(category, dict):
        category = category.get("value")
    return not isinstance(category, str) or not category.strip() or category.strip().lower() == ARM_CATEGORY


_ROLES = (
    ("Owner", "8e3af657a8ff443ca75c2fe8c4bcb635"),
    ("Contributor", "b24988ac618042a0ab8820f7382dd24c"),
)


@functools.cache
def _localized_status(value: str, code: int | None = None) -> dict[str, str]:
    if not value:
        return {"value": "", "localizedValue": ""}
    if code is None:
        return {"value": value, "localizedValue": value}
    return {"value": value, "localizedValue": f"{value} (HTTP Status Code: {code})"}


@functools.cache
def _named(value: str) -> dict[str, str]:
    return {"value": value, "localizedValue": value}


def _guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def _below(rng: random.Random, n: int) -> int:
    """A number in [0, n): randrange's job, several times faster (the tiny bias does not matter here)."""
    return int(rng.random() * n) if n > 0 else 0


def _digits(rng: random.Random) -> int:
    roll = rng.random()
    return next(digits for limit, digits in _DIGITS if roll < limit)


def _b64ish(rng: random.Random, length: int) -> str:
    """`length` random base64url characters."""
    raw = rng.getrandbits(6 * length + 6).to_bytes((6 * length + 13) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii")[:length]


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def copy_event(event: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a stored event (made of dicts, lists and scalars), much faster than copy.deepcopy.

    Stored events share nested objects (claims, status objects...) and must never be mutated; the
    API only serializes them and everything handed to callers is a copy.
    """
    out: dict[str, Any] = {}
    for key, value in event.items():
        if type(value) is dict:
            inner: dict[str, Any] = {}
            for k, v in value.items():
                inner[k] = _copy(v) if type(v) in (dict, list) else v
            out[key] = inner
        elif type(value) is list:
            out[key] = _copy(value)
        else:
            out[key] = value
    return out


class EventGenerator:
    """Builds the events of one (subscription, slot), and single events to inject."""

    def __init__(self, seed: int, directory: Directory, max_surface_delay_ticks: int) -> None:
        self.seed = seed
        self.directory = directory
        self.tenant_id = directory.tenant_id
        self.max_delay = max(0, max_surface_delay_ticks)
        actors = directory.actors
        self._actors = actors
        weights = [a.weight for a in actors]
        self._actor_cum = [sum(weights[: i + 1]) for i in range(len(weights))]

    # -- randomness helpers -------------------------------------------------------------------------

    def _pick_op(self, rng: random.Random) -> OperationTemplate:
        x = rng.random() * _OP_CUM[-1]
        return OPERATIONS[bisect.bisect_right(_OP_CUM, x)]

    def _pick_actor(self, rng: random.Random) -> Actor:
        x = rng.random() * self._actor_cum[-1]
        return self._actors[min(bisect.bisect_right(self._actor_cum, x), len(self._actors) - 1)]

    def surface_delay(self, rng: random.Random) -> int:
        if self.max_delay == 0:
            return 0
        low = min(MIN_SURFACE_DELAY_TICKS, self.max_delay)
        u = rng.random()
        if u < 0.15:
            return self.max_delay
        if u < 0.75:
            return low + _below(rng, max(1, min(50 * TICKS_PER_SECOND, self.max_delay - low) + 1))
        return low + _below(rng, self.max_delay - low + 1)

    # -- slots --------------------------------------------------------------------------------------

    @staticmethod
    def operations_for_rate(rate: float, jitter: float, fraction: float) -> int:
        if rate <= 0:
            return 0
        return int(rate * SLOT_SECONDS / 3600.0 / EVENTS_PER_OPERATION * jitter + fraction)

    def slot(
        self,
        record: SubscriptionRecord,
        slot: int,
        rate_at: Callable[[int], float],
        rates_in: Callable[[int, int], list[float]],
    ) -> list[StoredEvent]:
        """The events of the operations that start in one slot of one subscription, newest first.

        An operation's later events may fall in the next slot (never further: an operation lasts
        less than two minutes).
        """
        sub_id = record.subscription.subscription_id
        slot_start = slot * SLOT_TICKS
        slot_end = slot_start + SLOT_TICKS
        if slot_end <= record.created_ticks:
            return []
        slot_rng = random.Random(stable_int(self.seed, sub_id, slot, "slot"))
        jitter = 0.55 + 0.9 * slot_rng.random()
        fraction = slot_rng.random()
        n_max = max((self.operations_for_rate(r, jitter, fraction) for r in rates_in(slot_start, slot_end)), default=0)
        events: list[StoredEvent] = []
        for k in range(n_max):
            rng = random.Random(stable_int(self.seed, sub_id, slot, k))
            start = slot_start + _below(rng, SLOT_TICKS)
            if not record.active_at(start):
                continue
            if k >= self.operations_for_rate(rate_at(start), jitter, fraction):
                continue
            events.extend(self.operation(record, rng, start))
        # Platform events of other categories (service and resource health, alerts, autoscale,
        # Defender, Advisor): not ARM activities, but in the same Activity Log.
        for k in range(int(n_max * OTHER_EVENTS_PER_OPERATION + fraction)):
            rng = random.Random(stable_int(self.seed, sub_id, slot, "other", k))
            start = slot_start + _below(rng, SLOT_TICKS)
            if not record.active_at(start):
                continue
            if k >= int(
                self.operations_for_rate(rate_at(start), jitter, fraction) * OTHER_EVENTS_PER_OPERATION + fraction
            ):
                continue
            events.append(self.platform_event(record, rng, start))
        events.sort(key=lambda e: (e[0], e[1]), reverse=True)
        return events

    # -- one operation ------------------------------------------------------------------------------

    def _resource(
        self, record: SubscriptionRecord, op: OperationTemplate, rng: random.Random, start: int
    ) -> tuple[str, str]:
        """(resource group, resource id) for an operation."""
        sub_id = record.subscription.subscription_id
        groups = record.resource_groups
        rg = groups[_below(rng, len(groups))]
        role = rg.split("-")[1] if rg.count("-") >= 2 else "app"
        env = record.env
        rg_id = f"/subscriptions/{sub_id}/resourceGroups/{rg}"
        if op.scope == "resourceGroup":
            return rg, rg_id
        if op.scope == "roleAssignment":
            name = f"{stable_int(self.seed, sub_id, rg, _below(rng, 6)):032x}"[:32]
            assignment = f"{name[:8]}-{name[8:12]}-{name[12:16]}-{name[16:20]}-{name[20:32]}"
            return rg, f"{rg_id}/providers/Microsoft.Authorization/roleAssignments/{assignment}"
        if op.scope == "deployment":
            stamp = format_ticks(start)[:16].replace("-", "").replace(":", "").replace("T", "")
            return rg, f"{rg_id}/providers/Microsoft.Resources/deployments/Microsoft.Template-{stamp}"
        parts = op.type_path.split("/")
        index = 1 + _below(rng, 3)
        if parts[0] == "storageAccounts":
            parent = f"st{role}{env}{index:02d}"[:24]
        elif parts[0] in ("networkSecurityGroups", "sites", "servers", "virtualNetworks"):
            parent = f"{_NAME_PREFIX[parts[0]]}-{role}-{env}"
        else:
            parent = f"{_NAME_PREFIX.get(parts[0], 'res')}-{role}-{env}-{index:02d}"
        path = f"{rg_id}/providers/{op.provider}/{parts[0]}/{parent}"
        for child in parts[1:]:
            names = _CHILD_NAMES.get(child, ("default",))
            path += f"/{child}/{names[_below(rng, len(names))]}"
        return rg, path

    def _claims(self, actor: Actor, rng: random.Random, start: int, client_app: str) -> dict[str, str]:
        iat = start // TICKS_PER_SECOND - (60 + _below(rng, 2940))
        claims: dict[str, str] = {
            "aud": "https://management.core.windows.net/",
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": str(iat),
            "nbf": str(iat),
            "exp": str(iat + 3600 + _below(rng, 1800)),
        }
        oid_claim = "http://schemas.microsoft.com/identity/claims/objectidentifier"
        if actor.kind == "user" and actor.upn is None:
            # A personal Microsoft account (or a guest signed in with one): idtyp user, no upn, the
            # e-mail behind "live.com#" in the name claims.
            assert actor.caller is not None
            claims["acr"] = "1"
            claims["aio"] = _b64ish(rng, 40)
            claims["altsecid"] = f"1:live.com:{rng.getrandbits(64):016X}"
            claims["http://schemas.microsoft.com/claims/authnmethodsreferences"] = "pwd"
            claims["appid"] = client_app
            claims["appidacr"] = "0"
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"] = actor.caller
            if actor.given_name:
                claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"] = actor.given_name
            claims["http://schemas.microsoft.com/identity/claims/identityprovider"] = "live.com"
            claims["idtyp"] = "user"
            if actor.ipaddr:
                claims["ipaddr"] = actor.ipaddr
            if actor.name:
                claims["name"] = actor.name
            claims[oid_claim] = actor.oid or ""
            claims["http://schemas.microsoft.com/identity/claims/scope"] = "user_impersonation"
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"] = _b64ish(rng, 43)
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] = f"live.com#{actor.caller}"
            claims["unique_name"] = f"live.com#{actor.caller}"
            claims["uti"] = _b64ish(rng, 22)
        elif actor.kind == "user":
            assert actor.upn is not None
            claims["http://schemas.microsoft.com/claims/authnclassreference"] = "1"
            claims["aio"] = _b64ish(rng, 40)
            claims["http://schemas.microsoft.com/claims/authnmethodsreferences"] = (
                "pwd,mfa" if rng.random() < 0.8 else "pwd"
            )
            claims["appid"] = client_app
            claims["appidacr"] = "0" if client_app != CLIENT_APPS[0] else "2"
            if actor.given_name:
                claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"] = actor.given_name
            if actor.surname:
                claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"] = actor.surname
            if actor.ipaddr and rng.random() < 0.93:
                claims["ipaddr"] = actor.ipaddr
            if actor.name:
                claims["name"] = actor.name
            claims[oid_claim] = actor.oid or ""
            claims["puid"] = f"{rng.getrandbits(64):016X}"
            claims["rh"] = f"0.{_b64ish(rng, 60)}."
            claims["http://schemas.microsoft.com/identity/claims/scope"] = "user_impersonation"
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"] = _b64ish(rng, 43)
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] = actor.upn
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = actor.upn
            if "#EXT#" in actor.upn:
                claims["http://schemas.microsoft.com/identity/claims/identityprovider"] = "live.com"
            claims["uti"] = _b64ish(rng, 22)
            if actor.wids:
                claims["wids"] = ",".join(actor.wids)
        else:
            claims["aio"] = _b64ish(rng, 40)
            claims["appid"] = actor.appid or ""
            claims["appidacr"] = "2" if actor.kind == "managedIdentity" else "1"
            claims["http://schemas.microsoft.com/identity/claims/identityprovider"] = (
                f"https://sts.windows.net/{self.tenant_id}/"
            )
            # Older tokens of service principals carry no idtyp; managed identities always do.
            if actor.kind == "managedIdentity" or rng.random() < 0.7:
                claims["idtyp"] = "app"
            claims[oid_claim] = actor.oid or ""
            claims["rh"] = f"0.{_b64ish(rng, 60)}."
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"] = actor.oid or ""
            claims["uti"] = _b64ish(rng, 22)
            if actor.mirid:
                claims["xms_mirid"] = actor.mirid
        claims["http://schemas.microsoft.com/identity/claims/tenantid"] = self.tenant_id
        claims["ver"] = "1.0"
        claims["xms_tcdt"] = "1469565974"
        return claims

    def _client_ip(self, actor: Actor, rng: random.Random) -> str:
        if actor.kind == "user":
            u = rng.random()
            if u < 0.78 and actor.ipaddr:
                return actor.ipaddr
            if u < 0.9:
                return f"20.{50 + _below(rng, 5)}.{_below(rng, 256)}.{1 + _below(rng, 254)}"
            return f"2001:db8:4a7d:{_below(rng, 65536):x}::{1 + _below(rng, 65535):x}"
        if actor.kind == "servicePrincipal" and actor.ipaddr:
            return actor.ipaddr
        return f"10.{_below(rng, 256)}.{_below(rng, 256)}.{1 + _below(rng, 254)}"

    def operation(self, record: SubscriptionRecord, rng: random.Random, start: int) -> list[StoredEvent]:
        """The events one operation logs (start, end, maybe an asynchronous completion)."""
        op = self._pick_op(rng)
        actor = self._pick_actor(rng)
        return self._build(record, rng, start, op, actor)

    def _build(
        self,
        record: SubscriptionRecord,
        rng: random.Random,
        start: int,
        op: OperationTemplate,
        actor: Actor,
        single: bool = False,
    ) -> list[StoredEvent]:
        sub_id = record.subscription.subscription_id
        rg, resource_id = self._resource(record, op, rng, start)
        correlation_id = _guid(rng)
        operation_id = _guid(rng) if rng.random() < 0.5 else correlation_id
        client_request_id = _guid(rng)
        client_app = CLIENT_APPS[_below(rng, len(CLIENT_APPS))]
        claims: dict[str, str] | None
        if actor.kind in ("system", "none"):
            claims = {} if rng.random() < 0.5 else None
        else:
            claims = self._claims(actor, rng, start, client_app)
        http: dict[str, str] | None = None
        if actor.kind not in ("system", "none") and rng.random() < 0.9:
            http = {
                "clientRequestId": client_request_id,
                "clientIpAddress": self._client_ip(actor, rng),
                "method": op.method,
            }
        outcome_roll = rng.random()
        kind = op.kind
        if kind == "read":
            outcome = "Succeeded"
        elif outcome_roll < 0.1:
            outcome = "Failed"
        elif outcome_roll < 0.17 and kind != "read":
            outcome = "Accepted"
        else:
            outcome = "Succeeded"
        failure = _FAILURES[_below(rng, len(_FAILURES))]
        upper_rg = rng.random() < 0.15
        end = start + TICKS_PER_SECOND // 3 + _below(rng, 40 * TICKS_PER_SECOND)
        completion = end + 5 * TICKS_PER_SECOND + _below(rng, 55 * TICKS_PER_SECOND)
        evidence = None
        if actor.kind in ("user", "servicePrincipal", "managedIdentity") and rng.random() < 0.6:
            role, role_def = _ROLES[_below(rng, len(_ROLES))]
            evidence = {
                "role": role,
                "roleAssignmentScope": f"/subscriptions/{sub_id}",
                "roleAssignmentId": f"{rng.getrandbits(128):032x}",
                "roleDefinitionId": role_def,
                "principalId": (actor.oid or "").replace("-", ""),
                "principalType": "User" if actor.kind == "user" else "ServicePrincipal",
            }

        def event(
            at: int,
            phase: str,
            status: str,
            sub_status: dict[str, str],
            level: str,
            extra_props: dict[str, Any],
            with_http: bool,
            big_rg: bool,
        ) -> StoredEvent:
            event_id = _guid(rng)
            digits = 7 if single else _digits(rng)
            at = truncate_ticks(at, digits)
            submitted = at + self.surface_delay(rng)
            rg_name = rg.upper() if big_rg else rg
            rid = resource_id
            if big_rg:
                rid = resource_id.replace(f"/resourceGroups/{rg}", f"/resourcegroups/{rg_name}")
            authorization: dict[str, Any] = {"action": op.operation_name, "scope": rid}
            if evidence is not None and phase != "BeginRequest":
                authorization["evidence"] = evidence
            properties = {
                "eventCategory": "Administrative",
                "entity": rid,
                "message": op.operation_name,
                "hierarchy": f"{self.tenant_id}/{sub_id}",
                **extra_props,
            }
            body: dict[str, Any] = {"authorization": authorization}
            if actor.caller is not None:
                body["caller"] = actor.caller
            body["channels"] = "Operation"
            if claims is not None:
                body["claims"] = claims
            body["correlationId"] = correlation_id
            body["description"] = ""
            body["eventDataId"] = event_id
            body["eventName"] = _BEGIN if phase == "BeginRequest" else _END
            body["category"] = _ADMINISTRATIVE
            body["eventTimestamp"] = format_ticks_digits(at, digits)
            if with_http and http is not None:
                body["httpRequest"] = http
            body["id"] = f"{rid}/events/{event_id}/ticks/{dotnet_ticks(at)}"
            body["level"] = level
            body["operationId"] = operation_id
            body["operationName"] = {"value": op.operation_name, "localizedValue": op.localized}
            body["properties"] = properties
            body["resourceGroupName"] = rg_name
            body["resourceProviderName"] = _named(op.provider)
            body["resourceType"] = _named(op.resource_type)
            body["resourceId"] = rid
            body["status"] = _named(status)
            body["subStatus"] = sub_status
            body["submissionTimestamp"] = format_ticks(submitted)
            body["subscriptionId"] = sub_id
            body["tenantId"] = self.tenant_id
            if not single:
                shape = rng.random()
                if shape < _NO_TENANT:
                    del body["tenantId"]  # as in Microsoft Learn's sample event
                if shape < _NO_TYPE:
                    del body["resourceType"]
                elif shape > 1 - _NO_CATEGORY:
                    del body["category"]  # older events carry no category
                if rng.random() < 0.1:
                    properties["requestbody"] = None
            return (at, event_id, submitted, body)

        result: list[StoredEvent] = []
        if kind == "read" or single:
            result.append(
                event(
                    start,
                    "EndRequest",
                    "Succeeded",
                    _localized_status("OK", 200),
                    "Informational",
                    {"statusCode": "OK", "serviceRequestId": _guid(rng)},
                    True,
                    False,
                )
            )
            return result
        result.append(event(start, "BeginRequest", "Started", _localized_status(""), "Informational", {}, True, False))
        if outcome == "Failed":
            sub_value, code, error_code, message, level = failure
            props = {
                "statusCode": sub_value,
                "serviceRequestId": _guid(rng) if rng.random() < 0.7 else "",
                "statusMessage": json.dumps({"error": {"code": error_code, "message": message}}),
            }
            result.append(
                event(end, "EndRequest", "Failed", _localized_status(sub_value, code), level, props, True, upper_rg)
            )
        elif outcome == "Accepted":
            props = {"statusCode": "Accepted", "serviceRequestId": _guid(rng)}
            result.append(
                event(
                    end,
                    "EndRequest",
                    "Accepted",
                    _localized_status("Accepted", 202),
                    "Informational",
                    props,
                    True,
                    upper_rg,
                )
            )
            if rng.random() < 0.7:
                result.append(
                    event(
                        completion,
                        "EndRequest",
                        "Succeeded",
                        _localized_status(""),
                        "Informational",
                        {},
                        False,
                        upper_rg,
                    )
                )
        else:
            codes = _SUCCESS_CODES.get(kind, (("OK", 200),))
            sub_value, code = codes[_below(rng, len(codes))]
            props = {"statusCode": sub_value, "serviceRequestId": _guid(rng) if rng.random() < 0.8 else ""}
            if op.scope == "deployment" and rng.random() < 0.05:
                # A rare very large property, as template deployments produce (bigger than a Table property).
                outputs = {f"output{i:04d}": {"type": "String", "value": "x" * 120} for i in range(600)}
                props["responseBody"] = json.dumps({"properties": {"outputs": outputs}})
            elif kind == "write" and rng.random() < 0.3:
                state = {"id": resource_id, "properties": {"provisioningState": "Succeeded"}}
                props["responseBody"] = json.dumps(state)
            result.append(
                event(
                    end,
                    "EndRequest",
                    "Succeeded",
                    _localized_status(sub_value, code),
                    "Informational",
                    props,
                    True,
                    upper_rg,
                )
            )
        result.extend(
            self._consequences(record, rng, op, actor, claims, rg, resource_id, correlation_id, outcome, start, end)
        )
        return result

    # -- events that follow an operation, and platform events ------------------------------------------

    def _consequences(
        self,
        record: SubscriptionRecord,
        rng: random.Random,
        op: OperationTemplate,
        actor: Actor,
        claims: dict[str, str] | None,
        rg: str,
        resource_id: str,
        correlation_id: str,
        outcome: str,
        start: int,
        end: int,
    ) -> list[StoredEvent]:
        """A resource-group delete's cascaded child deletes, and Azure Policy's audit of a write."""
        found: list[StoredEvent] = []
        sub_id = record.subscription.subscription_id
        if op.scope == "resourceGroup" and op.kind == "delete" and outcome != "Failed":
            rg_id = f"/subscriptions/{sub_id}/resourceGroups/{rg}"
            upper = rng.random() < 0.5
            for index in range(1 + _below(rng, 4)):
                child = _CASCADED[_below(rng, len(_CASCADED))]
                at = start + 1 + _below(rng, max(1, end - start))
                provider, type_name, prefix = child
                child_id = f"{rg_id}/providers/{provider}/{type_name}/{prefix}-{record.env}-{index + 1:02d}"
                event_id = _guid(rng)
                body: dict[str, Any] = {
                    # The parent's action and type: ARM logs the cascade under the delete that caused it.
                    "authorization": {"action": _RESOURCE_GROUP_DELETE, "scope": rg_id},
                    "caller": actor.caller,
                    "channels": "Operation",
                    "claims": claims,
                    "correlationId": correlation_id,
                    "description": "",
                    "eventDataId": event_id,
                    "eventName": _END,
                    "category": _ADMINISTRATIVE,
                    "eventTimestamp": format_ticks(at),
                    "id": f"{child_id}/events/{event_id}/ticks/{dotnet_ticks(at)}",
                    "level": "Informational",
                    "operationId": _guid(rng),
                    "operationName": _named(f"{provider}/{type_name}/delete"),
                    "properties": {"eventCategory": "Administrative", "entity": child_id, "statusCode": "OK"},
                    "resourceGroupName": rg.upper() if upper else rg,
                    "resourceProviderName": _named("Microsoft.Resources"),
                    "resourceType": _named(_RESOURCE_GROUP_TYPE),
                    "resourceId": child_id.upper() if upper else child_id,
                    "status": _named("Succeeded"),
                    "subStatus": _localized_status(""),
                    "subscriptionId": sub_id,
                    "tenantId": self.tenant_id,
                }
                submitted = at + self.surface_delay(rng)
                body["submissionTimestamp"] = format_ticks(submitted)
                if actor.caller is None:
                    del body["caller"]
                if claims is None:
                    del body["claims"]
                found.append((at, event_id, submitted, body))
        if op.kind == "write" and outcome != "Accepted" and rng.random() < 0.3:
            at = end + TICKS_PER_SECOND + _below(rng, 5 * TICKS_PER_SECOND)
            found.append(self._policy_event(record, rng, op, actor, claims, rg, resource_id, correlation_id, at))
        return found

    def _policy_event(
        self,
        record: SubscriptionRecord,
        rng: random.Random,
        op: OperationTemplate,
        actor: Actor,
        claims: dict[str, str] | None,
        rg: str,
        resource_id: str,
        correlation_id: str,
        at: int,
    ) -> StoredEvent:
        """Azure Policy auditing a write: the write's correlationId, often the Policy Insights app as caller."""
        sub_id = record.subscription.subscription_id
        event_id = _guid(rng)
        assignment = f"{stable_int(self.seed, sub_id, 'policy-assignment'):024x}"[:24]
        definition = stable_guid(self.seed, "policy-definition", op.provider)
        policies = [
            {
                "policyDefinitionId": f"/providers/Microsoft.Authorization/policyDefinitions/{definition}/",
                "policyDefinitionName": definition,
                "policyDefinitionEffect": "Audit",
                "policyAssignmentId": f"/subscriptions/{sub_id}/providers/Microsoft.Authorization/"
                f"policyAssignments/{assignment}/",
                "policyAssignmentName": assignment,
                "policyAssignmentScope": f"/subscriptions/{sub_id}",
                "policyAssignmentParameters": {},
            }
        ]
        body: dict[str, Any] = {
            "authorization": {"action": op.operation_name, "scope": resource_id},
            "channels": "Operation",
            "correlationId": correlation_id,
            "description": "",
            "eventDataId": event_id,
            "eventName": _END,
            "category": _named("Policy"),
            "eventTimestamp": format_ticks(at),
            "id": f"{resource_id}/events/{event_id}/ticks/{dotnet_ticks(at)}",
            "level": "Warning",
            "operationId": _guid(rng),
            "operationName": _named("Microsoft.Authorization/policies/audit/action"),
            "properties": {
                "isComplianceCheck": "False",
                "resourceLocation": "westeurope",
                "ancestors": self.tenant_id,
                "policies": json.dumps(policies, separators=(",", ":")),
                "hierarchy": "",
            },
            "resourceGroupName": rg,
            "resourceProviderName": _named(op.provider),
            "resourceType": _named(op.resource_type),
            "resourceId": resource_id,
            "status": _named("Succeeded"),
            "subStatus": _localized_status(""),
            "subscriptionId": sub_id,
            "tenantId": self.tenant_id,
        }
        submitted = at + self.surface_delay(rng)
        body["submissionTimestamp"] = format_ticks(submitted)
        if rng.random() < 0.6 or actor.caller is None:
            # The Policy Insights resource provider's service principal.
            policy_oid = self.directory.policy_insights_object_id
            body["caller"] = policy_oid
            body["claims"] = {
                "aud": "https://management.azure.com/",
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "appid": POLICY_INSIGHTS_APP_ID,
                "appidacr": "2",
                "http://schemas.microsoft.com/identity/claims/identityprovider": f"https://sts.windows.net/{self.tenant_id}/",
                "http://schemas.microsoft.com/identity/claims/objectidentifier": policy_oid,
                "http://schemas.microsoft.com/identity/claims/tenantid": self.tenant_id,
                "ver": "1.0",
            }
        else:  # a new resource: the identity that made the write
            body["caller"] = actor.caller
            if claims is not None:
                body["claims"] = claims
        return (at, event_id, submitted, body)

    def platform_event(self, record: SubscriptionRecord, rng: random.Random, start: int) -> StoredEvent:
        """One event of another category than Administrative, shaped like the published samples."""
        sub_id = record.subscription.subscription_id
        x = rng.random() * _OTHER_CUM[-1]
        category = _OTHER_CATEGORIES[bisect.bisect_right(_OTHER_CUM, x)][0]
        event_id = _guid(rng)
        correlation_id = _guid(rng)
        groups = record.resource_groups
        rg = groups[_below(rng, len(groups))]
        vm_id = (
            f"/subscriptions/{sub_id}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/"
            f"vm-{record.env}-0{1 + _below(rng, 3)}"
        )
        digits = 7
        body: dict[str, Any]
        if category == "ServiceHealth":
            status = _HEALTH_STATUSES[_below(rng, len(_HEALTH_STATUSES))]
            title = ("Network Infrastructure - West Europe", "Virtual Machines - North Europe", "Azure Storage")[
                _below(rng, 3)
            ]
            body = {
                "channels": "Admin",
                "correlationId": correlation_id,
                "description": f"{status}: {title}",
                "eventDataId": event_id,
                "eventName": {"value": None},
                "category": {"value": "ServiceHealth", "localizedValue": "Service Health"},
                "level": "Warning" if rng.random() < 0.6 else "Informational",
                "operationName": _named("Microsoft.ServiceHealth/incident/action"),
                "resourceProviderName": {"value": None},
                "resourceType": {"value": None, "localizedValue": ""},
                "resourceId": f"/subscriptions/{sub_id}",
                "status": _named(status),
                "subStatus": {"value": None},
                "subscriptionId": sub_id,
                "properties": {
                    "title": title,
                    "service": "Virtual Machines",
                    "region": "West Europe",
                    "communication": "Engineers are investigating an issue in this region.",
                    "incidentType": ("Incident", "Maintenance", "Information", "ActionRequired")[_below(rng, 4)],
                    "trackingId": f"{_b64ish(rng, 4).upper()}-{_b64ish(rng, 3).upper()}",
                    "impactedServices": json.dumps(
                        [{"ImpactedRegions": [{"RegionName": "West Europe"}], "ServiceName": "Virtual Machines"}],
                        separators=(",", ":"),
                    ),
                    "stage": status,
                    "version": "0.1.1",
                },
            }
            resource_path = f"/subscriptions/{sub_id}"
        elif category == "ResourceHealth":
            status = _HEALTH_STATUSES[_below(rng, len(_HEALTH_STATUSES))]
            digits = 2
            body = {
                "channels": "Admin, Operation",
                "correlationId": correlation_id,
                "description": "",
                "eventDataId": event_id,
                "eventName": {"value": "", "localizedValue": ""},
                "category": {"value": "ResourceHealth", "localizedValue": "Resource Health"},
                "level": ("Critical", "Warning", "Informational")[_below(rng, 3)],
                "operationId": "",
                "operationName": {
                    "value": "Microsoft.Resourcehealth/healthevent/Activated/action",
                    "localizedValue": "Health Event Activated",
                },
                "resourceGroupName": rg,
                "resourceProviderName": _named("Microsoft.Resourcehealth/healthevent/action"),
                "resourceType": _named("Microsoft.Compute/virtualMachines"),
                "resourceId": vm_id,
                "status": _named(status),
                "subStatus": {"value": "", "localizedValue": ""},
                "subscriptionId": sub_id,
                "properties": {
                    "stage": status,
                    "title": "Virtual Machine health status changed to unavailable",
                    "details": None,
                    "healthStatus": "Unavailable",
                    "healthEventType": "Downtime",
                    "healthEventCause": "PlatformInitiated",
                    "healthEventCategory": "Unplanned",
                },
            }
            resource_path = vm_id
        elif category in ("Alert", "Autoscale"):
            spn = "Microsoft.Insights/alertRules" if category == "Alert" else "Microsoft.Insights/autoscaleSettings"
            kind = "alertrules" if category == "Alert" else "autoscalesettings"
            rule = (
                f"/subscriptions/{sub_id}/resourceGroups/{rg}/providers/microsoft.insights/{kind}/"
                f"{kind[:-1]}-{record.env}"
            )
            digits = 6
            resolved = rng.random() < 0.5
            body = {
                "caller": spn,
                "channels": "Admin, Operation",
                "claims": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/spn": spn},
                "correlationId": correlation_id,
                "description": "",
                "eventDataId": event_id,
                "eventName": _named("Alert" if category == "Alert" else "AutoscaleAction"),
                "category": _named(category),
                "level": "Informational" if category == "Autoscale" or resolved else "Critical",
                "resourceGroupName": rg,
                "resourceProviderName": _named("microsoft.insights"),
                "resourceId": rule,
                "resourceType": _named(f"microsoft.insights/{kind}"),
                "operationId": correlation_id,
                "operationName": _named(
                    f"Microsoft.Insights/AlertRules/{'Resolved' if resolved else 'Activated'}/Action"
                    if category == "Alert"
                    else "Microsoft.Insights/AutoscaleSettings/Scaleup/Action"
                ),
                "properties": {"RuleUri": rule, "Threshold": "80", "WindowSizeInMinutes": "5"}
                if category == "Alert"
                else {"ResourceName": vm_id, "OldInstancesCount": "2", "NewInstancesCount": "3"},
                "status": _named(("Resolved" if resolved else "Active") if category == "Alert" else "Succeeded"),
                "subStatus": {"value": None},
                "subscriptionId": sub_id,
            }
            resource_path = rule
        elif category == "Security":
            alert = f"/subscriptions/{sub_id}/providers/Microsoft.Security/locations/westeurope/alerts/{_guid(rng)}"
            body = {
                "channels": "Operation",
                "correlationId": correlation_id,
                "description": "Suspicious double extension file executed.\r\nThis may indicate malware.",
                "eventDataId": event_id,
                "eventName": _named("Suspicious double extension file executed"),
                "category": _named("Security"),
                "level": "Informational",
                "operationId": correlation_id,
                "operationName": _named("Microsoft.Security/locations/alerts/activate/action"),
                "resourceGroupName": rg,
                "resourceProviderName": _named("Microsoft.Security"),
                "resourceType": _named("Microsoft.Security/locations/alerts"),
                "resourceId": alert,
                "status": _named("Active"),
                "subStatus": {"value": None},
                "subscriptionId": sub_id,
                "properties": {"Severity": "High", "ActionTaken": "Detected", "parentProcess id": "0"},
            }
            resource_path = alert
        else:  # Recommendation: Advisor writes ids and providers in upper case
            digits = 6
            upper_vm = vm_id.upper().replace(sub_id.upper(), sub_id)
            body = {
                "channels": "Operation",
                "correlationId": correlation_id,
                "description": "The action was successful.",
                "eventDataId": event_id,
                "eventName": {"value": "", "localizedValue": ""},
                "category": _named("Recommendation"),
                "level": "Informational",
                "operationId": "",
                "operationName": _named("Microsoft.Advisor/generateRecommendations/action"),
                "resourceGroupName": rg.upper(),
                "resourceProviderName": _named("MICROSOFT.COMPUTE"),
                "resourceType": _named("MICROSOFT.COMPUTE/virtualmachines"),
                "resourceId": upper_vm,
                "status": _named("Active"),
                "subStatus": {"value": "", "localizedValue": ""},
                "subscriptionId": sub_id,
                "properties": {"recommendationCategory": "HighAvailability", "recommendationImpact": "Medium"},
            }
            resource_path = upper_vm
        at = truncate_ticks(start, digits)
        body["eventTimestamp"] = format_ticks_digits(at, digits)
        body["id"] = f"{resource_path}/events/{event_id}/ticks/{dotnet_ticks(at)}"
        submitted = at + self.surface_delay(rng)
        body["submissionTimestamp"] = format_ticks(submitted)
        return (at, event_id, submitted, body)

    def injected(
        self,
        record: SubscriptionRecord,
        at: int,
        delay: int,
        counter: int,
        fields: dict[str, Any],
    ) -> StoredEvent:
        """One event for inject_event: a realistic end event by a user, with `fields` laid over it."""
        rng = random.Random(stable_int(self.seed, record.subscription.subscription_id, "inject", counter))
        op_name = fields.get("operationName", fields.get("operation"))
        if isinstance(op_name, dict):
            op_name = op_name.get("value")
        op = OPERATIONS_BY_NAME.get(str(op_name).lower()) if op_name else None
        if op is None:
            op = OPERATIONS[0]
        actor = self.directory.users[_below(rng, len(self.directory.users))]
        base = self._build(record, rng, at, op, actor, single=True)[0][3]
        base["eventName"] = {"value": "EndRequest", "localizedValue": "End request"}
        if op.kind != "read":
            base["httpRequest"] = {**base.get("httpRequest", {}), "method": op.method}
        base["submissionTimestamp"] = format_ticks(at + delay)
        event = apply_fields(base, fields)
        event_id = str(event.get("eventDataId") or base["eventDataId"])
        event["eventTimestamp"] = format_ticks(at)
        event["submissionTimestamp"] = format_ticks(at + delay)
        return (at, event_id, at + delay, event)


class _Null:
    """Marker for an explicit JSON null in inject_event fields (None removes the field)."""

    def __repr__(self) -> str:
        return "JSON_NULL"


JSON_NULL: Any = _Null()

_VALUE_OBJECTS = (
    "operationName",
    "status",
    "subStatus",
    "eventName",
    "category",
    "resourceProviderName",
    "resourceType",
)


def apply_fields(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Lay caller-given fields over a generated event.

    `operation` is an alias of `operationName`; a plain string for a {value, localizedValue} field
    sets both; None removes the field; JSON_NULL sets it to null. Changing `operationName` also
    updates `authorization.action`, the provider and the resource type, unless those are given too.
    """
    event = dict(base)
    given = dict(fields)
    if "operation" in given:
        given.setdefault("operationName", given.pop("operation"))
    for key, value in given.items():
        if value is None:
            event.pop(key, None)
            continue
        if value is JSON_NULL:
            event[key] = None
            continue
        if key in _VALUE_OBJECTS and isinstance(value, str):
            value = {"value": value, "localizedValue": value}
        event[key] = _copy(value)
    op = given.get("operationName")
    if isinstance(op, str | dict) and op is not JSON_NULL:
        op_value = op if isinstance(op, str) else str(op.get("value", ""))
        known = OPERATIONS_BY_NAME.get(op_value.lower())
        if isinstance(op, str) and known is not None:
            event["operationName"] = {"value": known.operation_name, "localizedValue": known.localized}
        if "authorization" not in given and isinstance(event.get("authorization"), dict):
            event["authorization"] = {**event["authorization"], "action": op_value}
        if "/" in op_value:
            provider = op_value.split("/", 1)[0]
            if "resourceProviderName" not in given:
                event["resourceProviderName"] = _named(provider)
            if "resourceType" not in given:
                event["resourceType"] = _named(op_value.rsplit("/", 1)[0] if known is None else known.resource_type)
    status = event.get("status")
    if "status" in given and "level" not in given and isinstance(status, dict) and status.get("value") == "Failed":
        event["level"] = "Error"
    if "eventDataId" in given and isinstance(given["eventDataId"], str) and "id" not in given:
        event_id = given["eventDataId"]
        old = str(base.get("id", ""))
        if "/events/" in old:
            prefix, rest = old.split("/events/", 1)
            event["id"] = f"{prefix}/events/{event_id}/ticks/{rest.split('/ticks/', 1)[-1]}"
    return event


class EventStore:
    """Generated events (cached per slot) plus injected ones, with the queries the API and tests need.

    Stored events are shared and read-only: copy them (copy_event) before handing them out.
    """

    def __init__(
        self,
        generator: EventGenerator,
        base_rate: float,
        lock: threading.RLock,
        cache_events: int = 60_000,
    ) -> None:
        self.generator = generator
        self._lock = lock
        # (from_ticks, events per hour), sorted by from_ticks
        self._rates: list[tuple[int, float]] = [(-(2**62), float(base_rate))]
        self._injected: dict[str, dict[int, list[StoredEvent]]] = {}
        self._earliest_injected: dict[str, int] = {}
        self._cache: OrderedDict[tuple[str, int, str], list[StoredEvent]] = OrderedDict()
        self._cached_events = 0
        self._cache_limit = cache_events
        self._inject_counter = 0

    # -- rates --------------------------------------------------------------------------------------

    def set_rate(self, rate: float, since: int) -> None:
        with self._lock:
            kept = [(t, r) for t, r in self._rates if t < since]
            if not kept:
                kept = [(-(2**62), float(rate))]
            else:
                kept.append((since, float(rate)))
            self._rates = kept
            self.invalidate()

    def rate_at(self, ticks: int) -> float:
        rates = self._rates
        index = bisect.bisect_right(rates, (ticks, float("inf"))) - 1
        return rates[max(index, 0)][1]

    def rates_in(self, start: int, end: int) -> list[float]:
        values = [self.rate_at(start)]
        values.extend(r for t, r in self._rates if start < t < end)
        return values

    @property
    def current_rate(self) -> float:
        return self._rates[-1][1]

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cached_events = 0

    # -- slots --------------------------------------------------------------------------------------

    def _cached(self, key: tuple[str, int, str], make: Callable[[], list[StoredEvent]]) -> list[StoredEvent]:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        cached = make()
        self._cache[key] = cached
        self._cached_events += len(cached)
        while self._cached_events > self._cache_limit and len(self._cache) > 2:
            _, dropped = self._cache.popitem(last=False)
            self._cached_events -= len(dropped)
        return cached

    def _operations(self, record: SubscriptionRecord, slot: int) -> list[StoredEvent]:
        """Events of the operations that start in the slot (cached)."""
        return self._cached(
            (record.subscription.subscription_id, slot, "ops"),
            lambda: self.generator.slot(record, slot, *self._rates_of(record)),
        )

    def _rates_of(self, record: SubscriptionRecord) -> tuple[Callable[[int], float], Callable[[int, int], list[float]]]:
        """The rate functions of one subscription: the tenant's, scaled by its activity."""
        scale = record.activity
        if scale == 1.0:
            return self.rate_at, self.rates_in
        return (lambda ticks: self.rate_at(ticks) * scale), (lambda a, b: [r * scale for r in self.rates_in(a, b)])

    def slot_events(self, record: SubscriptionRecord, slot: int) -> list[StoredEvent]:
        """Every event whose eventTimestamp falls in the slot, newest first (injected ones included)."""
        sub_id = record.subscription.subscription_id
        low, high = slot * SLOT_TICKS, (slot + 1) * SLOT_TICKS

        def make() -> list[StoredEvent]:
            own = [e for e in self._operations(record, slot) if e[0] < high]
            spilled = [e for e in self._operations(record, slot - 1) if e[0] >= low]
            if not spilled:
                return own
            merged = own + spilled
            merged.sort(key=lambda e: (e[0], e[1]), reverse=True)
            return merged

        with self._lock:
            generated = self._cached((sub_id, slot, "events"), make)
            injected = self._injected.get(sub_id, {}).get(slot)
            if not injected:
                return generated
            merged = [*generated, *injected]
        merged.sort(key=lambda e: (e[0], e[1]), reverse=True)
        return merged

    def inject(self, record: SubscriptionRecord, at: int, delay: int, fields: dict[str, Any]) -> StoredEvent:
        with self._lock:
            self._inject_counter += 1
            stored = self.generator.injected(record, at, delay, self._inject_counter, fields)
            sub_id = record.subscription.subscription_id
            self._injected.setdefault(sub_id, {}).setdefault(at // SLOT_TICKS, []).append(stored)
            self._earliest_injected[sub_id] = min(self._earliest_injected.get(sub_id, at), at)
            return stored

    def scan(
        self,
        record: SubscriptionRecord,
        start: int,
        end: int,
        *,
        visible_at: int | None = None,
        predicate: Predicate | None = None,
        before: tuple[int, str] | None = None,
    ) -> Iterator[StoredEvent]:
        """Events with start <= eventTimestamp <= end, newest first (ties by eventDataId, descending).

        visible_at: only events whose submissionTimestamp <= visible_at. before: only events that sort
        after this (ticks, eventDataId) position, i.e. the continuation of a previous page.
        """
        upper = end
        if before is not None:
            upper = min(upper, before[0])
        if visible_at is not None:
            upper = min(upper, visible_at)
        sub_id = record.subscription.subscription_id
        earliest = min(record.created_ticks, self._earliest_injected.get(sub_id, record.created_ticks))
        lower = max(start, earliest)
        if upper < lower:
            return
        for slot in range(upper // SLOT_TICKS, lower // SLOT_TICKS - 1, -1):
            for stored in self.slot_events(record, slot):
                ticks = stored[0]
                if ticks > end or ticks < start:
                    continue
                if before is not None and (ticks, stored[1]) >= before:
                    continue
                if visible_at is not None and stored[2] > visible_at:
                    continue
                if predicate is not None and not predicate(stored[3]):
                    continue
                yield stored
