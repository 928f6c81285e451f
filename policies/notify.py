"""Webhook notifications: each alert of a policy with a `webhookUrl`, POSTed once it is raised, signed.

The body is the alert as `GET /api/alerts/{id}` shows it (without its activities), JSON in UTF-8:
``{"type": "alert", "alert": {...}}``. Two headers let the receiver check it came from this
connector and is not a replay:

* ``X-Connector-Timestamp``: the Unix time (seconds) of the attempt;
* ``X-Connector-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the app setting
  ``ALERT_WEBHOOK_SECRET``, of ``<timestamp>.<body>`` (the header's digits, a dot, the raw body).

The secret lives only in the app setting (in Azure, a Key Vault reference): never in Table Storage,
never logged. Only public internet addresses receive webhooks (`policies.egress`), each attempt has
`TIMEOUT_SECONDS` in all, and only the answer's status is read. Delivery goes through the alert
queue: a failed attempt (no answer, or a status other than 2xx) sends the message again with a
growing delay (`backoff_seconds`); after `max_attempts` the alert is marked `undelivered` and the
message is put on `<queue>-poison`. A delivery is at least once (a crash after the POST repeats
it): receivers tell repeats by the alert id (``X-Connector-Alert-Id``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import uuid
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from azure.core import PipelineClient
from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest
from azure.storage.queue import QueueClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.clock import Clock
from core.optimistic import write_optimistically
from core.ports import AlertQueue, AlertStore, PolicyStore, WebhookPoster
from core.transport import ca_bundle
from policies.egress import Deadline, checked_transport
from policies.models import Alert, Delivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Connector-Signature"
TIMESTAMP_HEADER = "X-Connector-Timestamp"
ALERT_ID_HEADER = "X-Connector-Alert-Id"
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 3600
TIMEOUT_SECONDS = 10.0

Outcome = Literal["delivered", "retrying", "undelivered", "skipped"]


class WebhookFailed(Exception):
    """The receiver could not be reached, or did not answer in time; the message says which, generically."""


class AlertMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    alert_id: str = Field(alias="alertId", pattern=r"^[0-9a-f]{32}$")
    attempt: int = Field(1, ge=1, le=100)

    def encode(self) -> str:
        return self.model_dump_json(by_alias=True)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance: float = 300) -> bool:
    """What a receiver does: the signature matches (in constant time) and the timestamp is recent."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode())


def backoff_seconds(attempt: int, base: int = BASE_DELAY_SECONDS) -> int:
    """The delay before attempt `attempt + 1`: base, 2 base, 4 base... with up to 20 % jitter, capped."""
    delay = min(base * 2 ** (attempt - 1), MAX_DELAY_SECONDS)
    return int(delay * random.uniform(1.0, 1.2)) if delay else 0


# --- adapters ----------------------------------------------------------------------------------


class StorageAlertQueue:
    """The alert queue in Queue Storage (base64, as host.json's messageEncoding expects)."""

    def __init__(self, queue: QueueClient, poison: QueueClient) -> None:
        self._queue = queue
        self._poison = poison

    def send(self, alert_id: str, *, attempt: int = 1, delay_seconds: int = 0) -> None:
        body = AlertMessage(alert_id=alert_id, attempt=attempt).encode()
        self._queue.send_message(body, visibility_timeout=delay_seconds or None)

    def poison(self, alert_id: str, *, attempt: int) -> None:
        self._poison.send_message(AlertMessage(alert_id=alert_id, attempt=attempt).encode())


class HttpWebhookPoster:
    """POSTs through azure-core; no redirects, no retries, no proxy; only the status line is read.

    Each delivery opens its own connection to an address checked by `policies.egress` (public
    only, unless `allow_private`), and the whole attempt (connect, TLS, send, status and headers)
    has `timeout` seconds: a receiver that answers byte by byte is cut off. The response body is
    never read. The CA bundle (`REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE`) is read once, here.
    """

    def __init__(self, timeout: float = TIMEOUT_SECONDS, *, allow_private: bool = False) -> None:
        self._timeout = timeout
        self._allow_private = allow_private
        self._verify: str | bool = ca_bundle() or True

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if urlsplit(url).scheme.lower() != "https":
            raise WebhookFailed("the webhook URL is not https://")
        request = HttpRequest(
            "POST", url, content=body, headers={"Content-Type": "application/json", "Connection": "close", **headers}
        )
        with Deadline(self._timeout) as deadline:
            transport = checked_transport(deadline, allow_private=self._allow_private, verify=self._verify)
            client: PipelineClient[Any, Any] = PipelineClient(base_url="", policies=[], transport=transport)
            try:
                with client:
                    response = client.send_request(
                        request, stream=True, connection_timeout=self._timeout, read_timeout=self._timeout
                    )
                    status = int(response.status_code)
                    response.close()  # the body is never read
            except AzureError as exc:
                if deadline.refused:
                    raise WebhookFailed(
                        "its host resolves to an internal address, where webhooks are not sent"
                    ) from exc
                if deadline.expired:
                    raise WebhookFailed(f"no answer within {self._timeout:g} s") from exc
                raise WebhookFailed("no connection or no valid TLS certificate") from exc
        return status


# --- the handler -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyPorts:
    alerts: AlertStore
    policies: PolicyStore
    queue: AlertQueue
    poster: WebhookPoster
    clock: Clock
    secret: str | None
    max_attempts: int = 5
    base_delay_seconds: int = BASE_DELAY_SECONDS


def run_notify(ports: NotifyPorts, body: bytes, *, message_id: str | None = None) -> Outcome:
    """Handle one alert-queue message: deliver, schedule the next attempt, or give up (poison).

    `message_id` is the queue's id of the message (the same on a redelivery); without one, the
    message counts as new.
    """
    try:
        message = AlertMessage.model_validate_json(body)
    except ValidationError:
        logger.error("Dropping a malformed alert message")
        return "skipped"
    alert = ports.alerts.get_alert(message.alert_id)
    if alert is None or alert.delivery != "pending":
        return "skipped"  # gone, or delivered (or given up) by an earlier message
    if message.attempt == 1:
        claimed = _claim_first_attempt(ports, alert, message_id or uuid.uuid4().hex)
        if claimed is None:
            return "skipped"  # another first message for this alert makes the attempt
        alert = claimed
    policy = ports.policies.get(alert.policy_id)
    url = policy.definition.webhook_url if policy is not None else None
    if not url:
        _mark(ports, alert, "none", "The policy has no webhook any more.")
        return "skipped"
    if not ports.secret:
        _mark(ports, alert, "undelivered", "ALERT_WEBHOOK_SECRET is not set: alerts cannot be signed.")
        logger.error("Alert %s not delivered: ALERT_WEBHOOK_SECRET is not set", alert.id)
        return "undelivered"
    payload = json.dumps({"type": "alert", "alert": alert.to_api()}, separators=(",", ":")).encode("utf-8")
    timestamp = str(int(ports.clock.now().timestamp()))
    headers = {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(ports.secret, timestamp, payload),
        ALERT_ID_HEADER: alert.id,
    }
    try:
        status = ports.poster.post(url, payload, headers)
        failure = None if 200 <= status < 300 else f"the webhook answered HTTP {status}"
    except WebhookFailed as exc:
        failure = f"the webhook could not be reached: {exc}"
    if failure is None:
        _mark(ports, alert, "delivered", None)
        logger.info("Alert %s delivered to its policy's webhook (attempt %s)", alert.id, message.attempt)
        return "delivered"
    if message.attempt >= ports.max_attempts:
        _mark(
            ports,
            alert,
            "undelivered",
            f"Not delivered after {message.attempt} attempts (last: {failure}); the message is in the poison queue.",
        )
        ports.queue.poison(alert.id, attempt=message.attempt)
        logger.warning("Alert %s undelivered after %s attempts: %s", alert.id, message.attempt, failure)
        return "undelivered"
    delay = backoff_seconds(message.attempt, ports.base_delay_seconds)
    _mark(ports, alert, "pending", f"Attempt {message.attempt} failed ({failure}); retrying in {delay} s.")
    ports.queue.send(alert.id, attempt=message.attempt + 1, delay_seconds=delay)
    logger.warning(
        "Alert %s: webhook attempt %s failed (%s); retrying in %s s", alert.id, message.attempt, failure, delay
    )
    return "retrying"


def _claim_first_attempt(ports: NotifyPorts, alert: Alert, message_id: str) -> Alert | None:
    """The alert, claimed for this message's first attempt; None when another message claimed it.

    A burst grown before its first attempt sends a second first message; of the two, the one
    whose conditional write lands first makes the attempts, the other stops, even when both run
    at once. The claimer's redelivery (same message id) goes on.
    """
    current: list[Alert | None] = [alert]

    def attempt() -> Alert | None:
        stored = current.pop() if current else ports.alerts.get_alert(alert.id)
        if stored is None or stored.delivery != "pending":
            return None
        if stored.delivery_claim is not None:
            return stored if stored.delivery_claim == message_id else None
        if stored.delivery_message is not None:
            return None  # an attempt was made by a message from before claims were recorded
        # StaleWrite: read again. The listing copies do not show the claim.
        return ports.alerts.replace_alert(replace(stored, delivery_claim=message_id), index=False)

    return write_optimistically(attempt, what=f"The alert {alert.id}")


def _mark(ports: NotifyPorts, alert: Alert, delivery: Delivery, message: str | None) -> None:
    current: list[Alert | None] = [alert]

    def attempt() -> None:
        stored = current.pop() if current else ports.alerts.get_alert(alert.id)
        if stored is None:
            return
        ports.alerts.replace_alert(replace(stored, delivery=delivery, delivery_message=message))  # StaleWrite: again

    write_optimistically(attempt, what=f"The alert {alert.id}")
