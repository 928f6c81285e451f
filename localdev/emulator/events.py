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
import itertools
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .tenant import CLIENT_APPS, POLICY_INSIGHTS_APP_ID, Actor, Directory, SubscriptionRecord, stable_guid, stable_int
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
_OP_CUM = tuple(itertools.accumulate(op.weight for op in OPERATIONS))
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
_OTHER_CUM = tuple(itertools.accumulate(w for _, w in _OTHER_CATEGORIES))
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
_MS_CLAIMS = "http://schemas.microsoft.com/identity/claims/"
_XML_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
_AUTHN_CLAIMS = "http://schemas.microsoft.com/claims/"


def is_arm_event(event: dict[str, Any]) -> bool:
    """An ARM activity: category Administrative (any case), or no category at all (older events)."""
    category = event.get("category")
    if isinstance(category, dict):
        category = category.get("value")
    return not isinstance(category, str) or not category.strip() or category.strip().lower() == ARM_CATEGORY


_ROLES = (("Owner", "8e3af657a8ff443ca75c2fe8c4bcb635"), ("Contributor", "b24988ac618042a0ab8820f7382dd24c"))


@functools.cache
def _named(value: str, code: int | None = None) -> dict[str, str]:
    """A {value, localizedValue} object; with an HTTP status code, as a subStatus shows it."""
    return {"value": value, "localizedValue": value if code is None else f"{value} (HTTP Status Code: {code})"}


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


def copy_event(value: Any) -> Any:
    """A deep copy of a stored event (made of dicts, lists and scalars), much faster than copy.deepcopy.

    Stored events share nested objects (claims, status objects...) and must never be mutated; the
    API only serializes them and everything handed to callers is a copy.
    """
    if type(value) is dict:
        return {k: copy_event(v) for k, v in value.items()}
    if type(value) is list:
        return [copy_event(v) for v in value]
    return value


@dataclass(frozen=True)
class _Context:
    """What the events that follow an operation share with it."""

    record: SubscriptionRecord
    rng: random.Random
    op: OperationTemplate
    actor: Actor
    claims: dict[str, str] | None
    rg: str
    resource_id: str
    correlation_id: str


class EventGenerator:
    """Builds the events of one (subscription, slot), and single events to inject."""

    def __init__(self, seed: int, directory: Directory, max_surface_delay_ticks: int) -> None:
        self.seed = seed
        self.directory = directory
        self.tenant_id = directory.tenant_id
        self.max_delay = max(0, max_surface_delay_ticks)
        self._actors = directory.actors
        self._actor_cum = tuple(itertools.accumulate(a.weight for a in self._actors))

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

        def allowed(rate: float, other: bool) -> int:
            n = int(rate * SLOT_SECONDS / 3600.0 / EVENTS_PER_OPERATION * jitter + fraction) if rate > 0 else 0
            return int(n * OTHER_EVENTS_PER_OPERATION + fraction) if other else n

        events: list[StoredEvent] = []
        # Operations, then platform events of other categories (service and resource health, alerts,
        # autoscale, Defender, Advisor): not ARM activities, but in the same Activity Log.
        for other in (False, True):
            for k in range(max((allowed(r, other) for r in rates_in(slot_start, slot_end)), default=0)):
                rng = random.Random(stable_int(self.seed, sub_id, slot, *(("other", k) if other else (k,))))
                start = slot_start + _below(rng, SLOT_TICKS)
                if not record.active_at(start) or k >= allowed(rate_at(start), other):
                    continue
                if other:
                    events.append(self.platform_event(record, rng, start))
                else:
                    events.extend(self.operation(record, rng, start))
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
        optional = {f"{_XML_CLAIMS}givenname": actor.given_name}
        if actor.kind == "user" and actor.upn is None:
            # A personal Microsoft account (or a guest signed in with one): idtyp user, no upn, the
            # e-mail behind "live.com#" in the name claims.
            claims["acr"] = "1"
            claims["aio"] = _b64ish(rng, 40)
            claims["altsecid"] = f"1:live.com:{rng.getrandbits(64):016X}"
            claims[f"{_AUTHN_CLAIMS}authnmethodsreferences"] = "pwd"
            claims.update(appid=client_app, appidacr="0")
            claims[f"{_XML_CLAIMS}emailaddress"] = str(actor.caller)
            claims[f"{_MS_CLAIMS}identityprovider"] = "live.com"
            claims["idtyp"] = "user"
            claims[f"{_XML_CLAIMS}nameidentifier"] = _b64ish(rng, 43)
            claims[f"{_XML_CLAIMS}name"] = claims["unique_name"] = f"live.com#{actor.caller}"
            optional.update(ipaddr=actor.ipaddr, name=actor.name)
        elif actor.kind == "user":
            assert actor.upn is not None
            claims[f"{_AUTHN_CLAIMS}authnclassreference"] = "1"
            claims["aio"] = _b64ish(rng, 40)
            claims[f"{_AUTHN_CLAIMS}authnmethodsreferences"] = "pwd,mfa" if rng.random() < 0.8 else "pwd"
            claims.update(appid=client_app, appidacr="0" if client_app != CLIENT_APPS[0] else "2")
            optional[f"{_XML_CLAIMS}surname"] = actor.surname
            optional.update(ipaddr=actor.ipaddr if actor.ipaddr and rng.random() < 0.93 else None, name=actor.name)
            claims["puid"] = f"{rng.getrandbits(64):016X}"
            claims["rh"] = f"0.{_b64ish(rng, 60)}."
            claims[f"{_XML_CLAIMS}nameidentifier"] = _b64ish(rng, 43)
            claims[f"{_XML_CLAIMS}name"] = claims[f"{_XML_CLAIMS}upn"] = actor.upn
            if "#EXT#" in actor.upn:
                claims[f"{_MS_CLAIMS}identityprovider"] = "live.com"
            optional["wids"] = ",".join(actor.wids)
        else:
            claims["aio"] = _b64ish(rng, 40)
            claims.update(appid=actor.appid or "", appidacr="2" if actor.kind == "managedIdentity" else "1")
            claims[f"{_MS_CLAIMS}identityprovider"] = f"https://sts.windows.net/{self.tenant_id}/"
            # Older tokens of service principals carry no idtyp; managed identities always do.
            if actor.kind == "managedIdentity" or rng.random() < 0.7:
                claims["idtyp"] = "app"
            claims["rh"] = f"0.{_b64ish(rng, 60)}."
            claims[f"{_XML_CLAIMS}nameidentifier"] = actor.oid or ""
            optional = {"xms_mirid": actor.mirid}
        claims[f"{_MS_CLAIMS}objectidentifier"] = actor.oid or ""
        if actor.kind == "user":
            claims[f"{_MS_CLAIMS}scope"] = "user_impersonation"
        claims.update({name: value for name, value in optional.items() if value})
        claims["uti"] = _b64ish(rng, 22)
        claims[f"{_MS_CLAIMS}tenantid"] = self.tenant_id
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
        op = rng.choices(OPERATIONS, cum_weights=_OP_CUM)[0]
        actor = rng.choices(self._actors, cum_weights=self._actor_cum)[0]
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
        roll, kind = rng.random(), op.kind
        outcome = "Succeeded" if kind == "read" or roll >= 0.17 else "Failed" if roll < 0.1 else "Accepted"
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

        context = _Context(record, rng, op, actor, claims, rg, resource_id, correlation_id)

        def event(
            at: int,
            status: str,
            sub_status: dict[str, str],
            extra_props: dict[str, Any],
            *,
            level: str = "Informational",
            begin: bool = False,
            with_http: bool = True,
            big_rg: bool = upper_rg,
        ) -> StoredEvent:
            rg_name = rg.upper() if big_rg else rg
            rid = resource_id.replace(f"/resourceGroups/{rg}", f"/resourcegroups/{rg_name}") if big_rg else resource_id
            authorization: dict[str, Any] = {"action": op.operation_name, "scope": rid}
            if evidence is not None and not begin:
                authorization["evidence"] = evidence
            properties = {
                "eventCategory": "Administrative",
                "entity": rid,
                "message": op.operation_name,
                "hierarchy": f"{self.tenant_id}/{sub_id}",
                **extra_props,
            }
            stored = self._event(
                context,
                at,
                rid,
                digits=7 if single else _digits(rng),
                authorization=authorization,
                category=_ADMINISTRATIVE,
                eventName=_BEGIN if begin else _END,
                level=level,
                operationId=operation_id,
                operationName={"value": op.operation_name, "localizedValue": op.localized},
                properties=properties,
                resourceGroupName=rg_name,
                resourceProviderName=_named(op.provider),
                resourceType=_named(op.resource_type),
                resourceId=rid,
                status=_named(status),
                subStatus=sub_status,
            )
            body = stored[3]
            if with_http and http is not None:
                body["httpRequest"] = http
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
            return stored

        if kind == "read" or single:
            props = {"statusCode": "OK", "serviceRequestId": _guid(rng)}
            return [event(start, "Succeeded", _named("OK", 200), props, big_rg=False)]
        result = [event(start, "Started", _named(""), {}, begin=True, big_rg=False)]
        if outcome == "Failed":
            sub_value, code, error_code, message, level = failure
            props = {
                "statusCode": sub_value,
                "serviceRequestId": _guid(rng) if rng.random() < 0.7 else "",
                "statusMessage": json.dumps({"error": {"code": error_code, "message": message}}),
            }
            result.append(event(end, "Failed", _named(sub_value, code), props, level=level))
        elif outcome == "Accepted":
            props = {"statusCode": "Accepted", "serviceRequestId": _guid(rng)}
            result.append(event(end, "Accepted", _named("Accepted", 202), props))
            if rng.random() < 0.7:
                result.append(event(completion, "Succeeded", _named(""), {}, with_http=False))
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
            result.append(event(end, "Succeeded", _named(sub_value, code), props))
        if op.scope == "resourceGroup" and kind == "delete" and outcome != "Failed":
            result.extend(self._cascaded_deletes(context, start, end))
        if kind == "write" and outcome != "Accepted" and rng.random() < 0.3:
            at = end + TICKS_PER_SECOND + _below(rng, 5 * TICKS_PER_SECOND)
            result.append(self._policy_event(context, at))
        return result

    # -- the events of an operation and of what follows it, and platform events ------------------------

    def _event(
        self, context: _Context, at: int, path: str, *, digits: int = 7, actor: bool = True, **fields: Any
    ) -> StoredEvent:
        """An event of an operation (under its correlationId): the common fields, then `fields`.

        Its time is cut to `digits` fractional digits, as written. With `actor`, it carries the
        operation's caller and claims (when the operation has them).
        """
        event_id = _guid(context.rng)
        at = truncate_ticks(at, digits)
        body: dict[str, Any] = {
            "channels": "Operation",
            "correlationId": context.correlation_id,
            "description": "",
            "eventDataId": event_id,
            "eventName": _END,
            "eventTimestamp": format_ticks_digits(at, digits),
            "id": f"{path}/events/{event_id}/ticks/{dotnet_ticks(at)}",
            "operationId": _guid(context.rng),
            "status": _named("Succeeded"),
            "subStatus": _named(""),
            "subscriptionId": context.record.subscription.subscription_id,
            "tenantId": self.tenant_id,
            **fields,
        }
        if actor and context.actor.caller is not None:
            body["caller"] = context.actor.caller
        if actor and context.claims is not None:
            body["claims"] = context.claims
        submitted = at + self.surface_delay(context.rng)
        body["submissionTimestamp"] = format_ticks(submitted)
        return (at, event_id, submitted, body)

    def _cascaded_deletes(self, context: _Context, start: int, end: int) -> list[StoredEvent]:
        """The child deletes a resource-group delete causes, logged under its action and type."""
        record, rng, rg = context.record, context.rng, context.rg
        rg_id = f"/subscriptions/{record.subscription.subscription_id}/resourceGroups/{rg}"
        upper = rng.random() < 0.5
        found: list[StoredEvent] = []
        for index in range(1 + _below(rng, 4)):
            provider, type_name, prefix = _CASCADED[_below(rng, len(_CASCADED))]
            at = start + 1 + _below(rng, max(1, end - start))
            child_id = f"{rg_id}/providers/{provider}/{type_name}/{prefix}-{record.env}-{index + 1:02d}"
            found.append(
                self._event(
                    context,
                    at,
                    child_id,
                    authorization={"action": _RESOURCE_GROUP_DELETE, "scope": rg_id},
                    category=_ADMINISTRATIVE,
                    level="Informational",
                    operationName=_named(f"{provider}/{type_name}/delete"),
                    properties={"eventCategory": "Administrative", "entity": child_id, "statusCode": "OK"},
                    resourceGroupName=rg.upper() if upper else rg,
                    resourceProviderName=_named("Microsoft.Resources"),
                    resourceType=_named(_RESOURCE_GROUP_TYPE),
                    resourceId=child_id.upper() if upper else child_id,
                )
            )
        return found

    def _policy_event(self, context: _Context, at: int) -> StoredEvent:
        """Azure Policy auditing a write: the write's correlationId, often the Policy Insights app as caller."""
        sub_id, op, resource_id = context.record.subscription.subscription_id, context.op, context.resource_id
        assignment = f"{stable_int(self.seed, sub_id, 'policy-assignment'):024x}"[:24]
        definition = stable_guid(self.seed, "policy-definition", op.provider)
        policy = {
            "policyDefinitionId": f"/providers/Microsoft.Authorization/policyDefinitions/{definition}/",
            "policyDefinitionName": definition,
            "policyDefinitionEffect": "Audit",
            "policyAssignmentId": f"/subscriptions/{sub_id}/providers/Microsoft.Authorization/"
            f"policyAssignments/{assignment}/",
            "policyAssignmentName": assignment,
            "policyAssignmentScope": f"/subscriptions/{sub_id}",
            "policyAssignmentParameters": {},
        }
        # Mostly the Policy Insights resource provider's service principal; else (a new resource) the
        # identity that made the write.
        by_policy_insights = context.rng.random() < 0.6 or context.actor.caller is None
        stored = self._event(
            context,
            at,
            resource_id,
            actor=not by_policy_insights,
            authorization={"action": op.operation_name, "scope": resource_id},
            category=_named("Policy"),
            level="Warning",
            operationName=_named("Microsoft.Authorization/policies/audit/action"),
            properties={
                "isComplianceCheck": "False",
                "resourceLocation": "westeurope",
                "ancestors": self.tenant_id,
                "policies": json.dumps([policy], separators=(",", ":")),
                "hierarchy": "",
            },
            resourceGroupName=context.rg,
            resourceProviderName=_named(op.provider),
            resourceType=_named(op.resource_type),
            resourceId=resource_id,
        )
        if by_policy_insights:
            policy_oid = self.directory.policy_insights_object_id
            stored[3]["caller"] = policy_oid
            stored[3]["claims"] = {
                "aud": "https://management.azure.com/",
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "appid": POLICY_INSIGHTS_APP_ID,
                "appidacr": "2",
                f"{_MS_CLAIMS}identityprovider": f"https://sts.windows.net/{self.tenant_id}/",
                f"{_MS_CLAIMS}objectidentifier": policy_oid,
                f"{_MS_CLAIMS}tenantid": self.tenant_id,
                "ver": "1.0",
            }
        return stored

    def platform_event(self, record: SubscriptionRecord, rng: random.Random, start: int) -> StoredEvent:
        """One event of another category than Administrative, shaped like the published samples."""
        sub_id = record.subscription.subscription_id
        category = rng.choices(_OTHER_CATEGORIES, cum_weights=_OTHER_CUM)[0][0]
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
                "description": f"{status}: {title}",
                "eventName": {"value": None},
                "category": {"value": "ServiceHealth", "localizedValue": "Service Health"},
                "level": "Warning" if rng.random() < 0.6 else "Informational",
                "operationName": _named("Microsoft.ServiceHealth/incident/action"),
                "resourceProviderName": {"value": None},
                "resourceType": {"value": None, "localizedValue": ""},
                "resourceId": f"/subscriptions/{sub_id}",
                "status": _named(status),
                "subStatus": {"value": None},
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
        elif category == "ResourceHealth":
            status = _HEALTH_STATUSES[_below(rng, len(_HEALTH_STATUSES))]
            digits = 2
            body = {
                "channels": "Admin, Operation",
                "description": "",
                "eventName": _named(""),
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
                "subStatus": _named(""),
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
        elif category in ("Alert", "Autoscale"):
            alert = category == "Alert"
            spn = "Microsoft.Insights/alertRules" if alert else "Microsoft.Insights/autoscaleSettings"
            kind = "alertrules" if alert else "autoscalesettings"
            rule = (
                f"/subscriptions/{sub_id}/resourceGroups/{rg}/providers/microsoft.insights/{kind}/"
                f"{kind[:-1]}-{record.env}"
            )
            digits = 6
            resolved = rng.random() < 0.5
            body = {
                "caller": spn,
                "channels": "Admin, Operation",
                "claims": {f"{_XML_CLAIMS}spn": spn},
                "description": "",
                "eventName": _named("Alert" if alert else "AutoscaleAction"),
                "category": _named(category),
                "level": "Informational" if not alert or resolved else "Critical",
                "resourceGroupName": rg,
                "resourceProviderName": _named("microsoft.insights"),
                "resourceId": rule,
                "resourceType": _named(f"microsoft.insights/{kind}"),
                "operationId": correlation_id,
                "operationName": _named(
                    f"Microsoft.Insights/AlertRules/{'Resolved' if resolved else 'Activated'}/Action"
                    if alert
                    else "Microsoft.Insights/AutoscaleSettings/Scaleup/Action"
                ),
                "properties": {"RuleUri": rule, "Threshold": "80", "WindowSizeInMinutes": "5"}
                if alert
                else {"ResourceName": vm_id, "OldInstancesCount": "2", "NewInstancesCount": "3"},
                "status": _named(("Resolved" if resolved else "Active") if alert else "Succeeded"),
                "subStatus": {"value": None},
            }
        elif category == "Security":
            body = {
                "channels": "Operation",
                "description": "Suspicious double extension file executed.\r\nThis may indicate malware.",
                "eventName": _named("Suspicious double extension file executed"),
                "category": _named("Security"),
                "level": "Informational",
                "operationId": correlation_id,
                "operationName": _named("Microsoft.Security/locations/alerts/activate/action"),
                "resourceGroupName": rg,
                "resourceProviderName": _named("Microsoft.Security"),
                "resourceType": _named("Microsoft.Security/locations/alerts"),
                "resourceId": f"/subscriptions/{sub_id}/providers/Microsoft.Security/locations/westeurope/alerts/"
                f"{_guid(rng)}",
                "status": _named("Active"),
                "subStatus": {"value": None},
                "properties": {"Severity": "High", "ActionTaken": "Detected", "parentProcess id": "0"},
            }
        else:  # Recommendation: Advisor writes ids and providers in upper case
            digits = 6
            body = {
                "channels": "Operation",
                "description": "The action was successful.",
                "eventName": _named(""),
                "category": _named("Recommendation"),
                "level": "Informational",
                "operationId": "",
                "operationName": _named("Microsoft.Advisor/generateRecommendations/action"),
                "resourceGroupName": rg.upper(),
                "resourceProviderName": _named("MICROSOFT.COMPUTE"),
                "resourceType": _named("MICROSOFT.COMPUTE/virtualmachines"),
                "resourceId": vm_id.upper().replace(sub_id.upper(), sub_id),
                "status": _named("Active"),
                "subStatus": _named(""),
                "properties": {"recommendationCategory": "HighAvailability", "recommendationImpact": "Medium"},
            }
        at = truncate_ticks(start, digits)
        body.update(correlationId=correlation_id, eventDataId=event_id, subscriptionId=sub_id)
        body["eventTimestamp"] = format_ticks_digits(at, digits)
        body["id"] = f"{body['resourceId']}/events/{event_id}/ticks/{dotnet_ticks(at)}"
        submitted = at + self.surface_delay(rng)
        body["submissionTimestamp"] = format_ticks(submitted)
        return (at, event_id, submitted, body)

    def injected(
        self, record: SubscriptionRecord, at: int, delay: int, counter: int, fields: dict[str, Any]
    ) -> StoredEvent:
        """One event for inject_event: a realistic end event by a user, with `fields` laid over it."""
        rng = random.Random(stable_int(self.seed, record.subscription.subscription_id, "inject", counter))
        op_name = fields.get("operationName", fields.get("operation"))
        if isinstance(op_name, dict):
            op_name = op_name.get("value")
        op = OPERATIONS_BY_NAME.get(str(op_name).lower(), OPERATIONS[0])
        actor = self.directory.users[_below(rng, len(self.directory.users))]
        base = self._build(record, rng, at, op, actor, single=True)[0][3]
        base["eventName"] = _END
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
        event[key] = copy_event(value)
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
        self, generator: EventGenerator, base_rate: float, lock: threading.RLock, cache_events: int = 60_000
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
            self._rates = [*kept, (since, float(rate))] if kept else [(-(2**62), float(rate))]
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
                if (
                    start <= stored[0] <= end
                    and (before is None or stored[:2] < before)
                    and (visible_at is None or stored[2] <= visible_at)
                    and (predicate is None or predicate(stored[3]))
                ):
                    yield stored
