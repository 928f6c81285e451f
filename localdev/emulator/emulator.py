"""The Entra ID + ARM emulator: state, the Python API tests drive it with, and the server around it."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import tempfile
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import trustme

from core.clock import Clock, SystemClock
from localdev.serving import LocalServer

from .api import Api
from .events import EventGenerator, EventStore, copy_event, is_arm_event
from .tenant import (
    SUBSCRIPTION_STATES,
    Directory,
    Subscription,
    SubscriptionRecord,
    default_subscriptions,
    env_for,
    resource_groups_for,
    stable_guid,
)
from .timefmt import TICKS_PER_SECOND, to_ticks
from .tokens import KeySet, TokenIssuer

logger = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "api://azure-app-connector"
FAULT_KINDS = ("429", "5xx", "slow")
_T = TypeVar("_T")


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered (control-API requests are not recorded)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    time: datetime


@dataclass
class Fault:
    """A fault injected into the Activity Log endpoint for the next `remaining` requests (-1: until cleared)."""

    kind: str
    subscription_id: str | None = None
    remaining: int = 1
    retry_after: int = 1
    status: int = 503
    seconds: float = 1.0


def _as_timedelta(value: timedelta | float | int) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


class Emulator:
    """Entra ID (authority host) and Azure Resource Manager on one loopback HTTPS port.

    Usage::

        with Emulator(clock=FakeClock(start), seed=7) as emu:
            credential = ClientSecretCredential(emu.tenant_id, emu.client_id, emu.client_secret,
                                                authority=emu.url, disable_instance_discovery=True)

    Clients must trust `ca_pem_path` (for example through REQUESTS_CA_BUNDLE).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        seed: int = 7,
        port: int = 0,
        state_dir: Path | str | None = None,
        *,
        audience: str = DEFAULT_AUDIENCE,
        subscription_page_size: int = 3,
        event_page_size: int = 200,
        events_per_hour: float = 60.0,
        max_surface_delay: timedelta | float = timedelta(minutes=5),
        check_arm_token_lifetime: bool = True,
        page_latency: float = 0.0,
    ) -> None:
        if subscription_page_size < 1 or event_page_size < 1:
            raise ValueError("page sizes must be at least 1")
        self.clock: Clock = clock or SystemClock()
        self.seed = seed
        self._port = port
        self._state_dir_arg = Path(state_dir) if state_dir is not None else None
        self._state_dir: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.audience = audience
        self.subscription_page_size = subscription_page_size
        self.event_page_size = event_page_size
        self.max_surface_delay = _as_timedelta(max_surface_delay)
        self.check_arm_token_lifetime = check_arm_token_lifetime
        if page_latency < 0:
            raise ValueError("page latency cannot be negative")
        self.page_latency = float(page_latency)
        self.lock = threading.RLock()
        self._records: dict[str, SubscriptionRecord] = {}
        self._faults: list[Fault] = []
        self._request_log: list[RequestRecord] = []
        self._added = 0
        self.sign_in_rejected = False

        now = self.clock.now()
        defaults = default_subscriptions(seed, now)
        production = defaults[0][0].subscription_id
        self.directory = Directory(seed, production)
        for sub, env, disabled_at in defaults:
            record = self._record(sub, env)
            if disabled_at is not None:
                record.history = [(record.created_ticks, "Enabled"), (to_ticks(disabled_at), "Disabled")]
        self.generator = EventGenerator(
            seed, self.directory, int(self.max_surface_delay.total_seconds() * TICKS_PER_SECOND)
        )
        self.store = EventStore(self.generator, events_per_hour, self.lock)

        self._server: LocalServer | None = None
        self._issuer: TokenIssuer | None = None
        self._keys: KeySet | None = None
        self._url: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        if self._state_dir_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="azure-emulator-")
            self._state_dir = Path(self._tmp.name)
        else:
            self._state_dir = self._state_dir_arg
            self._state_dir.mkdir(parents=True, exist_ok=True)
        ca = self._load_or_create_ca(self._state_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(context)
        self._keys = KeySet(self._state_dir)
        self._server = LocalServer(Api(self), self._port, context)
        self._url = f"https://127.0.0.1:{self._server.port}"
        self._issuer = TokenIssuer(self._keys, self.directory, self._url, self.audience)
        self._server.start("emulator-https")
        self.write_info()
        logger.info("emulator listening on %s (tenant %s)", self._url, self.tenant_id)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            logger.info("emulator on %s stopped", self._url)
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _load_or_create_ca(state_dir: Path) -> trustme.CA:
        cert_path, key_path = state_dir / "ca.pem", state_dir / "ca-key.pem"
        if cert_path.exists() and key_path.exists():
            try:
                return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
            except ValueError:
                logger.warning("could not load the CA in %s; generating a new one", state_dir)
        ca = trustme.CA(organization_name="Azure App Connector emulator")
        ca.cert_pem.write_to_path(str(cert_path))
        ca.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        return ca

    # -- identity -----------------------------------------------------------------------------------

    @staticmethod
    def _started(value: _T | None) -> _T:
        if value is None:
            raise RuntimeError("the emulator is not started: call start() or use it as a context manager")
        return value

    @property
    def url(self) -> str:
        return self._started(self._url)

    authority_host = arm_endpoint = url

    @property
    def state_dir(self) -> Path:
        return self._started(self._state_dir if self._url else None)

    @property
    def ca_pem_path(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def issuer(self) -> TokenIssuer:
        return self._started(self._issuer)

    @property
    def keys(self) -> KeySet:
        return self._started(self._keys)

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    @property
    def client_id(self) -> str:
        return self.directory.connector.client_id

    @property
    def client_secret(self) -> str:
        return self.directory.connector.client_secret

    @property
    def connector_object_id(self) -> str:
        return self.directory.connector.object_id

    @property
    def arm_audiences(self) -> tuple[str, ...]:
        """The audiences ARM accepts: this emulator's URL and the public cloud's ARM resource ids."""
        return (
            f"{self.url}/",
            self.url,
            "https://management.core.windows.net/",
            "https://management.core.windows.net",
            "https://management.azure.com/",
            "https://management.azure.com",
        )

    def connector_settings(self) -> dict[str, str]:
        """The connector's app settings that point it at this emulator (Entra ID, ARM, identity, API)."""
        return {
            "ARM_ENDPOINT": self.url,
            "AZURE_AUTHORITY_HOST": self.url,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self.client_secret,
            "CONNECTOR_API_AUDIENCE": self.audience,
        }

    def mint_token(self, kind: str = "global_admin", **claim_overrides: Any) -> str:
        """A user access token for the connector's API (see tokens.TOKEN_KINDS); None removes a claim."""
        return self.issuer.mint(kind, self.clock.now(), claim_overrides)

    def reject_sign_in(self, reject: bool = True) -> None:
        """Make the token endpoint refuse the connector's client secret (AADSTS7000215) or accept it again."""
        self.sign_in_rejected = reject

    # -- subscriptions ------------------------------------------------------------------------------

    def _record(self, sub: Subscription, env: str) -> SubscriptionRecord:
        if sub.subscription_id in self._records:
            raise ValueError(f"subscription {sub.subscription_id} already exists")
        created = sub.created_at = sub.created_at or self.clock.now()
        record = SubscriptionRecord(
            subscription=sub,
            created_ticks=to_ticks(created),
            history=[(to_ticks(created), sub.state)],
            resource_groups=resource_groups_for(env),
            env=env,
        )
        self._records[sub.subscription_id] = record
        return record

    @property
    def subscriptions(self) -> list[Subscription]:
        with self.lock:
            return [replace(r.subscription) for r in self._records.values()]

    def subscription_record(self, subscription_id: str) -> SubscriptionRecord | None:
        with self.lock:
            return self._records.get(subscription_id.lower())

    def _add(self, name: str, state: str, sub_id: str | None, created_at: datetime | None, env: str) -> Subscription:
        """A new subscription (its id derived from the seed unless given); call with the lock held."""
        self._added += 1
        sub_id = (sub_id or stable_guid(self.seed, "added-subscription", self._added)).lower()
        sub = Subscription(sub_id, name, state, created_at or self.clock.now())
        self._record(sub, env)
        self.store.invalidate()
        return sub

    def add_subscription(
        self,
        display_name: str,
        state: str = "Enabled",
        subscription_id: str | None = None,
        created_at: datetime | None = None,
    ) -> Subscription:
        if state not in SUBSCRIPTION_STATES:
            raise ValueError(f"unknown subscription state {state!r}; expected one of {sorted(SUBSCRIPTION_STATES)}")
        with self.lock:
            env = env_for(display_name, {r.env for r in self._records.values()})
            sub = replace(self._add(display_name, state, subscription_id, created_at, env))
        self.write_info()
        return sub

    def add_subscriptions(
        self,
        count: int,
        *,
        name_prefix: str = "Contoso Team",
        activity: float = 1.0,
        created_at: datetime | None = None,
    ) -> list[Subscription]:
        """Add `count` enabled subscriptions at once (a large tenant), each generating `activity` x the rate.

        Their ids are derived from the seed, as `add_subscription`'s; one call for ten thousand
        subscriptions takes a fraction of a second.
        """
        if count < 0 or activity < 0:
            raise ValueError("count and activity cannot be negative")
        added: list[Subscription] = []
        with self.lock:
            for n in range(self._added + 1, self._added + count + 1):
                sub = self._add(f"{name_prefix} {n}", "Enabled", None, created_at, f"t{n}")
                self._records[sub.subscription_id].activity = activity
                added.append(replace(sub))
        self.write_info()
        return added

    def set_subscription(
        self,
        subscription_id: str,
        *,
        state: str | None = None,
        listed: bool | None = None,
        forbidden: bool | None = None,
        display_name: str | None = None,
        activity: float | None = None,
    ) -> Subscription:
        """Change a subscription. A new state takes effect now: earlier events are kept.

        `activity` scales the events per hour it generates (1: the rate; 0: none), for all time.
        """
        with self.lock:
            record = self._require_record(subscription_id)
            if activity is not None:
                if activity < 0:
                    raise ValueError("activity cannot be negative")
                record.activity = float(activity)
                self.store.invalidate()
            sub = record.subscription
            if state is not None and state != sub.state:
                if state not in SUBSCRIPTION_STATES:
                    raise ValueError(f"unknown subscription state {state!r}")
                now = to_ticks(self.clock.now())
                record.history = [(t, s) for t, s in record.history if t < now] or [(record.created_ticks, sub.state)]
                record.history.append((max(now, record.created_ticks), state))
                sub.state = state
                self.store.invalidate()
            for name, value in (("listed", listed), ("forbidden", forbidden), ("display_name", display_name)):
                if value is not None:
                    setattr(sub, name, value)
            result = replace(sub)
        self.write_info()
        return result

    # -- events -------------------------------------------------------------------------------------

    @property
    def events_per_hour(self) -> float:
        return self.store.current_rate

    def set_events_per_hour(self, n: float, since: datetime | None = None) -> None:
        """Generated events per hour per active subscription, from `since` (default: now) onwards."""
        if n < 0:
            raise ValueError("events per hour cannot be negative")
        self.store.set_rate(n, to_ticks(since or self.clock.now()))

    def _require_record(self, subscription_id: str) -> SubscriptionRecord:
        record = self.subscription_record(subscription_id)
        if record is None:
            raise KeyError(f"unknown subscription {subscription_id}")
        return record

    def events(
        self, subscription_id: str, start: datetime, end: datetime, surfaced_by: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Ground truth: every event with start <= eventTimestamp <= end (and surfaced by `surfaced_by`
        when given), newest first, exactly as the API serves them."""
        record = self._require_record(subscription_id)
        visible = to_ticks(surfaced_by) if surfaced_by is not None else None
        return [
            copy_event(stored[3])
            for stored in self.store.scan(record, to_ticks(start), to_ticks(end), visible_at=visible)
        ]

    def arm_events(
        self, subscription_id: str, start: datetime, end: datetime, surfaced_by: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The ARM activities among `events(...)`: category Administrative, or no category at all.

        The rest (Policy, ServiceHealth, ResourceHealth, Alert, Autoscale, Security, Recommendation)
        is what a connector reads and skips: `other_events(...)`.
        """
        return [e for e in self.events(subscription_id, start, end, surfaced_by) if is_arm_event(e)]

    def other_events(
        self, subscription_id: str, start: datetime, end: datetime, surfaced_by: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The events among `events(...)` of another category than Administrative."""
        return [e for e in self.events(subscription_id, start, end, surfaced_by) if not is_arm_event(e)]

    def set_page_latency(self, seconds: float) -> None:
        """How long every Activity Log page takes to answer (ARM's pace is about 0.5-2 s a page)."""
        if seconds < 0:
            raise ValueError("page latency cannot be negative")
        self.page_latency = float(seconds)
        self.write_info()

    def inject_event(
        self, subscription_id: str, *, at: datetime, delay: timedelta | float = timedelta(0), **fields: Any
    ) -> dict[str, Any]:
        """Add one event at eventTimestamp `at` that surfaces `delay` later; `fields` override generated ones.

        A field given as None is removed from the event (use events.JSON_NULL for an explicit null);
        a string for a {value, localizedValue} field (operationName/operation, status, ...) sets both.
        """
        record = self._require_record(subscription_id)
        delay_ticks = int(_as_timedelta(delay).total_seconds() * TICKS_PER_SECOND)
        if delay_ticks < 0:
            raise ValueError("delay cannot be negative")
        stored = self.store.inject(record, to_ticks(at), delay_ticks, fields)
        return copy_event(stored[3])

    # -- faults -------------------------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        *,
        subscription_id: str | None = None,
        count: int = 1,
        retry_after: int = 1,
        status: int = 503,
        seconds: float = 1.0,
    ) -> Fault:
        """Make the next `count` Activity Log requests (of one subscription, or any) fail or be slow."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if count == 0 or count < -1:
            raise ValueError("count must be positive, or -1 for until cleared")
        if kind == "5xx" and not 500 <= status <= 599:
            raise ValueError("a 5xx fault needs a status from 500 to 599")
        fault = Fault(
            kind=kind,
            subscription_id=subscription_id.lower() if subscription_id else None,
            remaining=count,
            retry_after=int(retry_after),
            status=429 if kind == "429" else (200 if kind == "slow" else status),
            seconds=float(seconds),
        )
        with self.lock:
            self._faults.append(fault)
        return replace(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self.lock:
            return [replace(f) for f in self._faults]

    def take_fault(self, subscription_id: str) -> Fault | None:
        """Consume the first fault that applies to an Activity Log request of this subscription."""
        with self.lock:
            for fault in self._faults:
                if fault.subscription_id not in (None, subscription_id.lower()):
                    continue
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return replace(fault)
        return None

    # -- request log --------------------------------------------------------------------------------

    @property
    def request_log(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._request_log)

    def reset_request_log(self) -> None:
        with self.lock:
            self._request_log.clear()

    def record_request(self, method: str, path: str, query: dict[str, str], status: int) -> None:
        record = RequestRecord(method, path, query, status, self.clock.now())
        with self.lock:
            self._request_log.append(record)

    # -- info ---------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The document `GET /_emulator/info` serves and `emulator.json` holds."""
        with self.lock:
            subs = [r.subscription.as_json() for r in self._records.values()]
        return {
            "url": self.url,
            "authorityHost": self.url,
            "armEndpoint": self.url,
            "caPemPath": str(self.ca_pem_path),
            "tenantId": self.tenant_id,
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "audience": self.audience,
            "seed": self.seed,
            "eventsPerHour": self.events_per_hour,
            "maxSurfaceDelaySeconds": self.max_surface_delay.total_seconds(),
            "pageLatencySeconds": self.page_latency,
            "subscriptions": subs,
        }

    def write_info(self) -> None:
        if self._url is None or self._state_dir is None:
            return
        path = self._state_dir / "emulator.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.info(), indent=2) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
