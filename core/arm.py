"""The ARM adapter: subscription listing and Activity Log pages over one azure-core pipeline.

Pages are returned as raw JSON bytes so the caller can parse them straight into its own models.
Failures surface as the domain errors below; nothing here knows about HTTP answers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    HTTPPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest

from core.errors import ConnectorError
from core.timefmt import wire_time
from core.transport import pooled_transport
from core.troubleshooting import Notice, notice

logger = logging.getLogger(__name__)

SUBSCRIPTIONS_API_VERSION = "2022-12-01"
ACTIVITY_LOG_API_VERSION = "2015-04-01"
USER_AGENT = "azure-app-connector/0.1"
SUBSCRIPTIONS_PATH = "/subscriptions"


def activity_log_path(subscription_id: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Insights/eventtypes/management/values"


class ArmError(ConnectorError):
    """ARM could not be read."""

    code = "ArmError"

    def __init__(self, message: str, *, status: int | None = None, arm_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.arm_code = arm_code


class ArmSignInFailed(ArmError):
    """The connector's identity could not get a token from Entra ID."""


class ArmAccessDenied(ArmError):
    """401/403: the identity lacks a role (or the token was refused)."""


class ArmNotFound(ArmError):
    """404: the subscription no longer exists."""


class ArmUnavailable(ArmError):
    """ARM could not be reached or kept failing after retries."""


class ArmBadRequest(ArmError):
    """400: ARM refused the request (a filter it does not accept, a window older than 90 days)."""


class ArmLinkRefused(ArmError):
    """A paging link (stored, or in ARM's answer) that does not point at ARM_ENDPOINT's expected path.

    The connector's bearer token is only ever sent to ARM: a link elsewhere is refused before any
    request, so whoever can write a stored link cannot make the connector hand its token over.
    """


class ArmThrottled(Exception):
    """429 whose Retry-After is longer than we are willing to wait inside the function.

    Deliberately not an AzureError, so azure-core's RetryPolicy does not retry it.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"ARM throttled the request; retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class _LongThrottlePolicy(HTTPPolicy[Any, Any]):
    """Turns a retryable answer whose Retry-After is long into ArmThrottled instead of a sleep."""

    RETRIED = frozenset({429, 500, 502, 503, 504})

    def __init__(self, max_inline_wait: float) -> None:
        super().__init__()
        self._max = max_inline_wait

    def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        response = self.next.send(request)
        status = response.http_response.status_code
        header = response.http_response.headers.get("Retry-After")
        if status in self.RETRIED and (header or status == 429):
            retry_after = _retry_after(header)
            if retry_after > self._max:
                raise ArmThrottled(retry_after)
        return response


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 60.0


@dataclass(frozen=True)
class ArmSubscription:
    subscription_id: str
    display_name: str
    state: str


class ArmClient:
    """Reads ARM with the connector's own identity."""

    def __init__(
        self,
        endpoint: str,
        credential: TokenCredential,
        scope: str,
        *,
        max_inline_wait: float = 10.0,
        retry_total: int = 3,
        backoff_factor: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._timeout = timeout
        policies: list[Any] = [
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(USER_AGENT),
            RetryPolicy(retry_total=retry_total, retry_backoff_factor=backoff_factor, retry_backoff_max=30),
            BearerTokenCredentialPolicy(credential, scope),
            _LongThrottlePolicy(max_inline_wait),
        ]
        self._client: PipelineClient[Any, Any] = PipelineClient(
            base_url=self.endpoint, policies=policies, transport=pooled_transport()
        )

    def close(self) -> None:
        self._client.close()

    def check_link(self, url: str, expected_path: str) -> str:
        """`url` if it points at this ARM endpoint (scheme, host, port) and `expected_path`; else ArmLinkRefused.

        The path is compared after percent-decoding and without case (ARM's own links vary the
        case of provider names); userinfo, fragments and dot segments are refused outright.
        """
        try:
            link = urlsplit(url)
            port = link.port
        except ValueError:
            raise ArmLinkRefused("a paging link is not a valid URL") from None
        base = urlsplit(self.endpoint)
        path = unquote(link.path)
        if (
            link.scheme.lower() != base.scheme.lower()
            or (link.hostname or "").lower() != (base.hostname or "").lower()
            or (port or 443) != (base.port or 443)
            or link.username is not None
            or link.password is not None
            or link.fragment
            or "/../" in f"{path}/"
            or "/./" in f"{path}/"
            or path.rstrip("/").lower() != expected_path.lower()
        ):
            raise ArmLinkRefused(
                f"a paging link points outside {self.endpoint}{expected_path} "
                f"({link.scheme}://{link.hostname}{link.path}); it was not followed"
            )
        return url

    def _get(self, url: str) -> bytes:
        request = HttpRequest("GET", url)
        try:
            response = self._client.send_request(
                request, stream=False, connection_timeout=10, read_timeout=self._timeout
            )
        except ClientAuthenticationError as exc:
            raise ArmSignInFailed(_sign_in_message(exc)) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise ArmUnavailable(f"ARM could not be reached at {self.endpoint}: {type(exc).__name__}") from exc
        except AzureError as exc:  # e.g. a response cut short; the caller treats it as transient
            raise ArmUnavailable(f"ARM's answer could not be read: {type(exc).__name__}") from exc
        status = response.status_code
        if status == 200:
            return bytes(response.read())
        code, message = _arm_error(response.read())
        if status in (401, 403):
            raise ArmAccessDenied(message, status=status, arm_code=code)
        if status == 404:
            raise ArmNotFound(message, status=status, arm_code=code)
        if status == 400:
            raise ArmBadRequest(message, status=status, arm_code=code)
        if status == 429:
            raise ArmThrottled(_retry_after(response.headers.get("Retry-After")))
        raise ArmUnavailable(f"ARM answered {status} {code or ''}: {message}".strip(), status=status, arm_code=code)

    def list_subscriptions(self) -> list[ArmSubscription]:
        """Every subscription the identity can read, following nextLink."""
        url: str | None = f"{self.endpoint}{SUBSCRIPTIONS_PATH}?api-version={SUBSCRIPTIONS_API_VERSION}"
        found: list[ArmSubscription] = []
        pages = 0
        while url:
            pages += 1
            if pages > 1000:
                raise ArmUnavailable("ARM kept returning nextLink for the subscription list")
            document = _json(self._get(url))
            for item in document.get("value") or []:
                sub_id = item.get("subscriptionId")
                if not isinstance(sub_id, str) or not sub_id:
                    continue
                found.append(
                    ArmSubscription(
                        subscription_id=sub_id.lower(),
                        display_name=str(item.get("displayName") or sub_id),
                        state=str(item.get("state") or "Enabled"),
                    )
                )
            next_link = document.get("nextLink") or None
            url = self.check_link(str(next_link), SUBSCRIPTIONS_PATH) if next_link else None
        return found

    def activity_log_url(self, subscription_id: str, start: datetime, end: datetime) -> str:
        flt = f"eventTimestamp ge '{wire_time(start)}' and eventTimestamp le '{wire_time(end)}'"
        return (
            f"{self.endpoint}{quote(activity_log_path(subscription_id))}"
            f"?api-version={ACTIVITY_LOG_API_VERSION}&$filter={quote(flt)}"
        )

    def check_activity_log_link(self, subscription_id: str, url: str) -> str:
        """`url` if it is a page of this subscription's Activity Log at ARM_ENDPOINT; else ArmLinkRefused."""
        return self.check_link(url, activity_log_path(subscription_id))

    def activity_log_page(self, subscription_id: str, url: str) -> bytes:
        """The raw JSON of one Activity Log page of `subscription_id`; `url` is activity_log_url(...) or a nextLink.

        The link is checked before the request: the token goes to this subscription's Activity Log only.
        """
        return self._get(self.check_activity_log_link(subscription_id, url))


def arm_failure_notice(exc: ArmError | ArmThrottled, *, subscription: str | None = None) -> Notice:
    """A message for an administrator, from the troubleshooting catalog: what is wrong and how to fix it."""
    where = f"subscription {subscription}" if subscription else "the subscription list"
    if isinstance(exc, ArmThrottled):
        return notice("ArmThrottled", where=where, retryAfter=f"{exc.retry_after:.0f}")
    if isinstance(exc, ArmSignInFailed):
        return notice("ArmSignInFailed", detail=exc.message.removeprefix(SIGN_IN_PREFIX))
    if isinstance(exc, ArmAccessDenied):
        answer = " ".join(part for part in (str(exc.status or ""), exc.arm_code or "") if part)
        if subscription:
            return notice("SubscriptionDenied", subscription=subscription, answer=answer)
        return notice("ArmListDenied", answer=answer)
    if isinstance(exc, ArmNotFound):
        return notice("ArmNotFound", where=where)
    if isinstance(exc, ArmBadRequest):
        return notice("ArmBadRequest", where=where, reason=exc.message)
    if isinstance(exc, ArmUnavailable):
        return notice("ArmUnavailable", where=where, reason=exc.message)
    return notice("ArmError", where=where, reason=exc.message)


def no_subscription_notice() -> Notice:
    return notice("NoSubscription")


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ArmUnavailable("ARM answered with a body that is not JSON") from exc
    if not isinstance(document, dict):
        raise ArmUnavailable("ARM answered with an unexpected JSON document")
    return document


def _arm_error(body: bytes) -> tuple[str | None, str]:
    """ARM's error code and message from an error answer's body.

    Three shapes are read: ARM's usual `{"error": {"code", "message"}}`, the Activity Log's
    top-level `{"code", "message"}`, and the older `{"Code", "Message"}` (member names are
    matched without case at both levels). A body that is not JSON gives its first 200
    characters as the message.
    """
    try:
        document = json.loads(body)
    except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
        return None, body[:200].decode("utf-8", "replace").strip() or "no message"
    if not isinstance(document, dict):
        return None, "no message"
    members = {str(key).lower(): value for key, value in document.items()}
    nested = members.get("error")
    if isinstance(nested, dict):
        members = {str(key).lower(): value for key, value in nested.items()}
    code, message = members.get("code"), members.get("message")
    code = code.strip() if isinstance(code, str) and code.strip() else None
    message = message.strip() if isinstance(message, str) and message.strip() else None
    return code, message or "no message"


SIGN_IN_PREFIX = "The connector's identity could not sign in to Entra ID: "


def _sign_in_message(exc: ClientAuthenticationError) -> str:
    text = str(exc.message or exc)
    # Keep the AADSTS code and first sentence; never anything that could carry a secret.
    first = text.split("\n")[0][:300]
    return f"{SIGN_IN_PREFIX}{first}"
