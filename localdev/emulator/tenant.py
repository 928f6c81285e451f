"""The synthetic Contoso tenant: its ids, the connector's app registration, subscriptions and actors.

Everything is derived from the seed, so two emulators with the same seed describe the same tenant
(the same GUIDs, the same people), and tests can rely on it.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from .timefmt import format_datetime

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
SECURITY_ADMINISTRATOR = "194ae4cb-b126-40b2-bd5b-6091b380977d"
# The "User" directory role template every member carries in `wids`.
DEFAULT_USER_ROLE = "b79fbf4d-3ef9-4689-8143-76b194e85509"
# The "Guest User" directory role template a B2B guest carries instead.
GUEST_USER_ROLE = "10dae51f-b6af-4016-8d66-8c2a99b929b3"

# First-party client applications users call ARM through (their well-known app ids).
AZURE_PORTAL_APP_ID = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"
AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
AZURE_POWERSHELL_APP_ID = "1950a258-227b-4e31-a9cf-717495945fc2"
CLIENT_APPS = (AZURE_PORTAL_APP_ID, AZURE_CLI_APP_ID, AZURE_POWERSHELL_APP_ID)
# Azure Policy's resource provider (Policy Insights): the caller of Policy's own evaluations.
POLICY_INSIGHTS_APP_ID = "1d78a85d-813d-46f0-b496-dd72f50a3ec0"

TENANT_DOMAIN = "contoso.com"
TENANT_INITIAL_DOMAIN = "contoso.onmicrosoft.com"

# States in which a subscription is usable and its resources keep generating activity.
ACTIVE_STATES = frozenset({"Enabled", "Warned", "PastDue"})
SUBSCRIPTION_STATES = frozenset({"Enabled", "Warned", "PastDue", "Disabled", "Deleted"})

ActorKind = Literal["user", "servicePrincipal", "managedIdentity", "system", "none"]


def stable_guid(seed: int | str, *parts: object) -> str:
    """A GUID that depends only on the seed and the parts (version-4 shaped)."""
    digest = hashlib.blake2b("|".join(str(p) for p in (seed, *parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def stable_int(seed: int | str, *parts: object) -> int:
    digest = hashlib.blake2b("|".join(str(p) for p in (seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class Subscription:
    """A subscription of the tenant as the emulator's owner sees and steers it."""

    subscription_id: str
    display_name: str
    state: str = "Enabled"
    created_at: datetime | None = None
    listed: bool = True
    forbidden: bool = False

    def as_json(self) -> dict[str, Any]:
        """The subscription as the control API and `emulator.json` show it."""
        return {
            "subscriptionId": self.subscription_id,
            "displayName": self.display_name,
            "state": self.state,
            "createdAt": format_datetime(self.created_at) if self.created_at else None,
            "listed": self.listed,
            "forbidden": self.forbidden,
        }


@dataclass
class SubscriptionRecord:
    """Internal: a subscription plus the history of its state (events are generated only while active)."""

    subscription: Subscription
    created_ticks: int
    # (from_ticks, state), sorted; the first entry starts at created_ticks.
    history: list[tuple[int, str]] = field(default_factory=list)
    resource_groups: tuple[str, ...] = ()
    env: str = "prod"
    # The subscription's share of the tenant's events per hour: 1 generates the rate, 0 nothing.
    activity: float = 1.0

    def state_at(self, ticks: int) -> str | None:
        if ticks < self.created_ticks:
            return None
        state: str | None = None
        for since, value in self.history:
            if since > ticks:
                break
            state = value
        return state

    def active_at(self, ticks: int) -> bool:
        return self.state_at(ticks) in ACTIVE_STATES


@dataclass(frozen=True)
class Actor:
    """Someone (or something) that calls ARM and so appears as the caller of Activity Log events."""

    kind: ActorKind
    key: str
    caller: str | None = None
    oid: str | None = None
    upn: str | None = None
    name: str | None = None
    given_name: str | None = None
    surname: str | None = None
    appid: str | None = None
    ipaddr: str | None = None
    mirid: str | None = None
    wids: tuple[str, ...] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class ConnectorApp:
    """The connector's own app registration and service principal (client-credentials grant)."""

    client_id: str
    client_secret: str
    object_id: str
    display_name: str = "Azure App Connector"


# display name, environment short name, days before "now" it was created, disabled days ago (or None)
DEFAULT_SUBSCRIPTIONS: tuple[tuple[str, str, int, int | None], ...] = (
    ("Contoso Production", "prod", 420, None),
    ("Contoso Development", "dev", 390, None),
    ("Contoso Staging", "stg", 300, None),
    ("Contoso Sandbox", "sbx", 200, None),
    ("Contoso Data", "data", 150, None),
    ("Contoso Legacy", "legacy", 700, 20),
)

RESOURCE_GROUP_ROLES = ("web", "data", "network", "identity", "shared")

# (upn local part, display name or None, given name, surname, weight, wids)
_USERS: tuple[tuple[str, str | None, str, str, float, tuple[str, ...]], ...] = (
    ("admin", "Contoso Administrator", "Contoso", "Administrator", 1.0, (GLOBAL_ADMINISTRATOR,)),
    ("adele.vance", "Adele Vance", "Adele", "Vance", 1.0, (SECURITY_ADMINISTRATOR,)),
    ("alex.wilber", "Alex Wilber", "Alex", "Wilber", 3.0, ()),
    ("diego.siciliani", None, "Diego", "Siciliani", 2.0, ()),
    ("isaiah.langer", "Isaiah Langer", "Isaiah", "Langer", 2.5, ()),
    ("lynne.robbins", None, "Lynne", "Robbins", 1.5, ()),
    ("nestor.wilke", "Nestor Wilke", "Nestor", "Wilke", 2.0, ()),
    ("johanna.lorenz", "Johanna Lorenz", "Johanna", "Lorenz", 1.5, ()),
)

# The people of the browser sign-in page: (upn local part, display name, wids).
_PEOPLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("globaladmin", "Global Administrator", (GLOBAL_ADMINISTRATOR, DEFAULT_USER_ROLE)),
    ("secadmin", "Security Administrator", (SECURITY_ADMINISTRATOR, DEFAULT_USER_ROLE)),
    ("user", "Regular User", (DEFAULT_USER_ROLE,)),
    ("guest_example.com#EXT#", "Guest User", (GUEST_USER_ROLE,)),  # a B2B guest from example.com
)

# (display name, caller is the app id (True) or the object id (False), weight)
_SERVICE_PRINCIPALS: tuple[tuple[str, bool, float], ...] = (
    ("terraform-platform", True, 3.0),
    ("github-actions-deploy", True, 2.5),
    ("backup-automation", False, 1.0),
)

# (name, resource group, resource type: user-assigned, or the resource a system-assigned one belongs to, weight)
_USER_ASSIGNED = "Microsoft.ManagedIdentity/userAssignedIdentities"
_MANAGED_IDENTITIES: tuple[tuple[str, str, str, float], ...] = (
    ("id-aks-workload", "rg-identity-prod", _USER_ASSIGNED, 1.5),
    ("id-func-ingest", "rg-identity-prod", _USER_ASSIGNED, 1.0),
    ("func-orders", "rg-web-prod", "Microsoft.Web/sites", 1.0),
)

SYSTEM_CALLERS: tuple[tuple[str, float], ...] = (
    ("Microsoft.RecoveryServices", 1.0),
    ("Microsoft.Advisor", 0.4),
    ("Microsoft.Compute/virtualMachineScaleSets", 0.4),
)


class Directory:
    """The tenant's identity directory, derived from a seed."""

    def __init__(self, seed: int, production_subscription_id: str) -> None:
        self.seed = seed
        self.tenant_id = stable_guid(seed, "tenant")
        secret_tail = stable_guid(seed, "client-secret").replace("-", "")
        self.connector = ConnectorApp(
            client_id=stable_guid(seed, "connector", "client-id"),
            client_secret=f"emu~{secret_tail[:8]}.{secret_tail[8:30]}",
            object_id=stable_guid(seed, "connector", "sp-object-id"),
        )

        def user(local: str, caller: str, **fields: Any) -> Actor:
            return Actor(
                kind="user", key=f"user:{local}", caller=caller, oid=stable_guid(seed, "user", local), **fields
            )

        self.users: list[Actor] = [
            user(
                local,
                f"{local}@{TENANT_DOMAIN}",
                upn=f"{local}@{TENANT_DOMAIN}",
                name=name,
                given_name=given,
                surname=surname,
                ipaddr=f"203.0.113.{10 + index * 7}",
                wids=(*wids, DEFAULT_USER_ROLE),
                weight=weight,
            )
            for index, (local, name, given, surname, weight, wids) in enumerate(_USERS)
        ]
        # A guest from a partner organization: its UPN is the #EXT# form.
        guest = f"grady.archie_fabrikam.com#EXT#@{TENANT_INITIAL_DOMAIN}"
        self.users.append(
            user(
                "guest",
                guest,
                upn=guest,
                name="Grady Archie (Fabrikam)",
                given_name="Grady",
                surname="Archie",
                ipaddr="198.51.100.77",
                weight=0.7,
            )
        )
        # Users without a upn claim: a personal Microsoft account added to the tenant, and a guest
        # who signed in with one. Their tokens say idtyp user; the caller is the e-mail address.
        self.users_without_upn: list[Actor] = [
            user(
                "personal",
                "pat.personal@outlook.com",
                name="Pat Personal",
                given_name="Pat",
                ipaddr="198.51.100.91",
                weight=0.6,
            ),
            user("guest-msa", "sam.consultant@hotmail.com", name="Sam Consultant", ipaddr="198.51.100.92", weight=0.4),
        ]
        # Who can sign in through the browser sign-in page (not callers of the generated activity).
        self.people: list[Actor] = [
            Actor(
                kind="user",
                key=f"person:{local.split('_')[0]}",
                caller=f"{local}@{TENANT_DOMAIN}",
                oid=stable_guid(seed, "person", local),
                upn=f"{local}@{TENANT_DOMAIN}",
                name=name,
                wids=wids,
            )
            for local, name, wids in _PEOPLE
        ]
        self.policy_insights_object_id = stable_guid(seed, "policy-insights", "sp-object-id")
        self.service_principals: list[Actor] = []
        for index, (display, caller_is_appid, weight) in enumerate(_SERVICE_PRINCIPALS):
            appid = stable_guid(seed, "sp-app", display)
            oid = stable_guid(seed, "sp-object", display)
            self.service_principals.append(
                Actor(
                    kind="servicePrincipal",
                    key=f"sp:{display}",
                    caller=appid if caller_is_appid else oid,
                    oid=oid,
                    name=display,
                    appid=appid,
                    ipaddr=f"198.51.100.{20 + index}",
                    weight=weight,
                )
            )
        self.managed_identities: list[Actor] = []
        for name, rg, resource_type, weight in _MANAGED_IDENTITIES:
            mirid = f"/subscriptions/{production_subscription_id}/resourcegroups/{rg}/providers/{resource_type}/{name}"
            oid = stable_guid(seed, "mi-object", name)
            self.managed_identities.append(
                Actor(
                    kind="managedIdentity",
                    key=f"mi:{name}",
                    caller=oid,
                    oid=oid,
                    appid=stable_guid(seed, "mi-app", name),
                    mirid=mirid,
                    name=name,
                    weight=weight,
                )
            )
        self.system_callers = [
            Actor(kind="system", key=f"system:{caller}", caller=caller, weight=weight)
            for caller, weight in SYSTEM_CALLERS
        ]
        self.nobody = Actor(kind="none", key="none", weight=0.25)

    @property
    def actors(self) -> list[Actor]:
        return [
            *self.users,
            *self.users_without_upn,
            *self.service_principals,
            *self.managed_identities,
            *self.system_callers,
            self.nobody,
        ]

    def user(self, kind: str) -> Actor:
        """The user a minted token of this kind stands for."""
        if kind == "security_admin":
            return self.users[1]
        if kind == "user":
            return self.users[2]
        return self.users[0]


def default_subscriptions(seed: int, now: datetime) -> list[tuple[Subscription, str, datetime | None]]:
    """The six subscriptions every emulated tenant starts with: (subscription, env, disabled_at)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    result: list[tuple[Subscription, str, datetime | None]] = []
    for display, env, created_days, disabled_days in DEFAULT_SUBSCRIPTIONS:
        created = day - timedelta(days=created_days)
        disabled_at = day - timedelta(days=disabled_days) if disabled_days is not None else None
        sub = Subscription(
            subscription_id=stable_guid(seed, "subscription", display),
            display_name=display,
            state="Disabled" if disabled_at is not None else "Enabled",
            created_at=created,
        )
        result.append((sub, env, disabled_at))
    return result


def resource_groups_for(env: str) -> tuple[str, ...]:
    return tuple(f"rg-{role}-{env}" for role in RESOURCE_GROUP_ROLES)


def env_for(display_name: str, taken: set[str]) -> str:
    """A short lower-case environment name for a new subscription's resource names."""
    words = [w for w in display_name.lower().replace("-", " ").split() if w.isalnum()]
    base = (words[-1] if words else "sub")[:8] or "sub"
    candidate = base
    n = 2
    while candidate in taken:
        candidate = f"{base}{n}"
        n += 1
    return candidate
