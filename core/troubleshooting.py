"""The troubleshooting catalog: every message the connector shows, with its cause and its fix.

The code produces its messages here and nowhere else (`notice(code, **values)`), so the
connector's status, `GET /api/troubleshooting` and docs/troubleshooting.md cannot drift apart.
A message template names its variable parts as `{placeholders}`; rendering refuses a missing or
unknown one. Where a message appears:

* `connector`: the connector's `message` (its `messageCode` is the entry's code);
* `subscription`: a subscription row's `message` (and `messageCode`);
* `api`: an error answer of the API (`{"error": {"code", "message"}}`; `code` is the HTTP error
  code named in the entry, the message is the entry's).

Regenerate the document with `make docs` (`python -m core.troubleshooting docs/troubleshooting.md`);
a unit test fails while it is stale.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Scope = Literal["connector", "subscription", "api"]

READER_FIX = (
    "assign the connector's identity the Activity Log Reader role (or Reader) on the subscriptions, or on a "
    "management group above them"
)
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md"


@dataclass(frozen=True)
class Notice:
    """A message as the connector shows it, with the catalog code that produced it."""

    code: str
    text: str


@dataclass(frozen=True)
class Entry:
    code: str
    scopes: tuple[Scope, ...]  # where it is shown (the first is where the document lists it)
    title: str
    message: str  # the template: what is shown, with {placeholders}
    cause: str
    fix: str
    http: str | None = None  # for `api` entries: the error answer's status and code

    @property
    def placeholders(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.message) if name]

    def render(self, **values: Any) -> Notice:
        expected = set(self.placeholders)
        if set(values) != expected:
            raise ValueError(f"{self.code} takes {sorted(expected)}, got {sorted(values)}")
        return Notice(self.code, self.message.format(**values).strip())

    def to_api(self) -> dict[str, str]:
        return {"code": self.code, "title": self.title, "message": self.message, "cause": self.cause, "fix": self.fix}


_WHERE = '`{where}` is "the subscription list" or "subscription <name> (<id>)".'

CATALOG: tuple[Entry, ...] = (
    # --- the connector ------------------------------------------------------------------------------
    Entry(
        "Disconnected",
        ("connector",),
        "Disconnected",
        "Disconnected by {disconnectedBy} at {disconnectedAt}. Stored data is kept; connect again to resume "
        "monitoring.",
        "An administrator disconnected Microsoft Azure. Nothing is pulled any more; the activities and accounts "
        "already stored stay until retention removes them.",
        "Connect Microsoft Azure again (an administrator: Global Administrator or Security Administrator). "
        "Monitoring resumes from the moment of the new connection; the time in between is not backfilled.",
    ),
    Entry(
        "ConnectionNotCompleted",
        ("connector",),
        "The connection was not completed",
        "The connection was not completed; connect again.",
        "A connect attempt was recorded but did not finish, and no error was kept.",
        "Connect again; if it fails, the status shows the reason.",
    ),
    Entry(
        "NoSubscription",
        ("connector",),
        "The connector's identity can read no subscription",
        f"The connector's identity can read no subscription: {READER_FIX}.",
        "ARM listed no subscription for the connector's identity (its managed identity in Azure, or the app "
        "registration of AZURE_CLIENT_ID): it has no role on any subscription.",
        f"In the Azure portal (or with infra/reader-access.bicep), {READER_FIX}; then connect again, or wait for "
        "the next fan-out (every five minutes by default).",
    ),
    Entry(
        "NoActiveSubscription",
        ("connector",),
        "No active subscription can be read",
        f"The connector's identity can read no active subscription: {READER_FIX}.",
        "Every subscription the connector knows is disabled, deleted, or no longer visible to its identity.",
        f"{READER_FIX[0].upper()}{READER_FIX[1:]}, on an enabled subscription; the next fan-out picks it up.",
    ),
    Entry(
        "SomeSubscriptionsFailing",
        ("connector",),
        "Some subscriptions cannot be pulled",
        "Some subscriptions cannot be pulled: {subscriptions}. {details}",
        "At least one active subscription's last pull failed while others succeed; `{subscriptions}` names them "
        "and `{details}` repeats their own messages.",
        "Follow the fix of each subscription's message (its row shows it with its own code).",
    ),
    Entry(
        "AllSubscriptionsFailing",
        ("connector",),
        "No subscription can be pulled",
        "No subscription can be pulled: {subscriptions}. {details}",
        "The last pull of every active subscription failed; `{details}` repeats their messages.",
        "Follow the fix of each subscription's message; a problem shared by all of them is usually the "
        "connector's identity (its roles, or its sign-in).",
    ),
    # --- ARM, for the subscription list (connector) or one subscription -----------------------------
    Entry(
        "ArmSignInFailed",
        ("connector",),
        "The connector's identity could not sign in",
        "The connector's identity could not sign in to Entra ID: {detail}. Check AZURE_TENANT_ID and "
        "AZURE_CLIENT_ID (and the client secret, or that the Function App's managed identity exists).",
        "Entra ID refused to issue the connector's identity a token for ARM; `{detail}` is the first line of its "
        "answer (an AADSTS code).",
        "Check AZURE_TENANT_ID and AZURE_CLIENT_ID in the Function App's settings; with a client secret, that it "
        "is current; in Azure, that the user-assigned managed identity named by AZURE_CLIENT_ID exists and is "
        "attached to the Function App.",
    ),
    Entry(
        "ArmListDenied",
        ("connector",),
        "ARM refused to list subscriptions",
        f"ARM refused to list subscriptions for the connector's identity ({{answer}}): {READER_FIX}.",
        "ARM answered 401 or 403 to the subscription list; `{answer}` is its status and error code.",
        f"{READER_FIX[0].upper()}{READER_FIX[1:]}; if the role is there, check that the tenant "
        "(AZURE_TENANT_ID) is the one the subscriptions belong to.",
    ),
    Entry(
        "SubscriptionDenied",
        ("subscription",),
        "No read access to a subscription",
        "The connector's identity has no read access to subscription {subscription} (ARM answered {answer}): "
        "assign it the Activity Log Reader role (or Reader) on that subscription.",
        "ARM answered 401 or 403 when the connector read this subscription's Activity Log: its role was removed, "
        "or it never had one there.",
        "Assign the connector's identity the Activity Log Reader role (or Reader) on that subscription, or on a "
        "management group above it; the next fan-out pulls it again.",
    ),
    Entry(
        "ArmNotFound",
        ("connector", "subscription"),
        "ARM no longer knows the subscription",
        "ARM no longer knows {where}; it may have been deleted or moved to another tenant.",
        f"ARM answered 404. {_WHERE}",
        "Nothing to do if the subscription was deleted or moved on purpose: it stays listed with its stored data. "
        "Otherwise check in the Azure portal that it still exists in this tenant.",
    ),
    Entry(
        "ArmThrottled",
        ("connector",),
        "ARM is throttling the connector",
        "ARM is throttling the connector's reads of {where}; it retries after {retryAfter} s.",
        f"ARM answered 429 with a long Retry-After. {_WHERE}",
        "Nothing: the connector waits and retries by itself. If it lasts, other tools may be using the same "
        "identity's ARM read quota.",
    ),
    Entry(
        "ArmBadRequest",
        ("connector",),
        "ARM refused the request",
        "ARM refused the request for {where}: {reason}",
        f"ARM answered 400; `{{reason}}` is ARM's message. {_WHERE}",
        "The connector opens the window anew on the next attempt. If it persists, report ARM's message with the "
        "connector's version.",
    ),
    Entry(
        "ArmUnavailable",
        ("connector",),
        "ARM could not be read",
        "ARM could not be read for {where}: {reason}. The connector retries on its next run.",
        f"ARM could not be reached, or kept failing after retries. {_WHERE}",
        "Nothing if it is brief; the next run retries. If it lasts, check ARM_ENDPOINT and the Function App's "
        "outbound network access.",
    ),
    Entry(
        "ArmError",
        ("connector",),
        "ARM answered something unexpected",
        "ARM could not be read for {where}: {reason}",
        "ARM answered in a way the connector does not accept, for example a paging link that does not point at "
        f"ARM_ENDPOINT (never followed). {_WHERE}",
        "Check ARM_ENDPOINT; if it is right, report the message with the connector's version.",
    ),
    # --- a subscription's pull ----------------------------------------------------------------------
    Entry(
        "SubscriptionNotVisible",
        ("subscription",),
        "The subscription is no longer visible",
        f"The connector's identity can no longer see this subscription; it is not pulled. To monitor it again, "
        f"{READER_FIX}.",
        "ARM no longer lists the subscription for the connector's identity: its role was removed, or the "
        "subscription was deleted or moved to another tenant.",
        f"To monitor it again, {READER_FIX}.",
    ),
    Entry(
        "SubscriptionNotActive",
        ("subscription",),
        "The subscription is not active",
        "The subscription is {state}; it is not pulled.",
        "ARM reports the subscription in a state without activity to read (Disabled, Deleted...).",
        "Re-enable the subscription in Azure if it should be monitored; the next fan-out pulls it again.",
    ),
    Entry(
        "PullThrottled",
        ("subscription",),
        "ARM is throttling this subscription's pull",
        "ARM is throttling reads; the pull resumes at {resumeAt}.",
        "ARM answered 429 with a Retry-After longer than the pull waits inline; the pull was put back on the "
        "queue, delayed. The status stays OK.",
        "Nothing: the pull resumes by itself at the time shown.",
    ),
    Entry(
        "PullRetrying",
        ("subscription",),
        "Pulling failed and is retried",
        "Pulling failed (attempt {attempt} of {maxAttempts}; it is retried): {reason}",
        "A transient failure (ARM or storage unreachable, the connector's sign-in, a window or page ARM refused, "
        "storage contention); `{reason}` is the error. The queue delivers the message again.",
        "Nothing if a later attempt succeeds. If every attempt fails, see PullPoisoned.",
    ),
    Entry(
        "PullPoisoned",
        ("subscription",),
        "Pulling failed on every attempt",
        "Pulling failed {attempts} times (last error: {reason}); the message was moved to {poisonQueue} and the "
        "next fan-out tries again.",
        "Every delivery of the pull message failed; the Functions host moved it to the poison queue. Nothing is "
        "lost: the watermark did not move, and the next fan-out enqueues the subscription again.",
        "Fix what the last error names: ARM unreachable (check ARM_ENDPOINT and the outbound network), the "
        "connector's sign-in (see ArmSignInFailed), storage (check AzureWebJobsStorage). The poison queue's "
        "messages can be deleted.",
    ),
    Entry(
        "PullFailedUnexpectedly",
        ("subscription",),
        "Pulling failed unexpectedly",
        "Pulling failed unexpectedly ({errorType}); see the Function App's logs.",
        "A defect in the connector: an error it does not expect. It is retried like a transient failure.",
        "Look for the error in Application Insights (or the host's log) and report it with the connector's version.",
    ),
    # --- the API's error answers --------------------------------------------------------------------
    Entry(
        "NotConnected",
        ("api",),
        "Microsoft Azure is not connected yet",
        "Microsoft Azure is not connected yet: connect it first (POST /api/connectors/azure).",
        "The connector was never connected: there is no status to show.",
        "Connect Microsoft Azure (an administrator).",
        http="404 NotFound",
    ),
    Entry(
        "AdminRoleRequired",
        ("api",),
        "A change needs an administrator",
        "{action} needs the {roles} role in Entra ID.",
        "The signed-in person has none of the administrator roles (in the token's `wids`) that may make changes: "
        "connecting or disconnecting Microsoft Azure, creating, changing or deleting policies, changing an alert's "
        "status or comment. Reading the connector, activities, accounts, policies and alerts needs no such role.",
        "Ask a Global Administrator or Security Administrator to make the change, or to assign you one of those "
        "roles in Entra ID (then sign in again for a new token).",
        http="403 Forbidden",
    ),
    Entry(
        "AdminNotApplication",
        ("api",),
        "An application cannot make changes",
        "{action} needs a signed-in Global Administrator or Security Administrator (a delegated token); an "
        "application's token cannot do it.",
        "An application (client credentials, app-only token) called connect or disconnect, or asked to create, "
        "change or delete a policy or to change an alert.",
        "Make the change as a signed-in administrator, from the portal or with a delegated token.",
        http="403 Forbidden",
    ),
    Entry(
        "ScopeMissing",
        ("api",),
        "The token lacks the API's scope",
        "The access token lacks the delegated scope {scope} of this API (it has {granted}); request a token for "
        "the {scope} scope.",
        "A delegated token for this API's audience, but without its scope in `scp` (requested for another scope).",
        "Request the token for the API's `Connector.Access` scope (`api://<API client id>/Connector.Access`); the "
        "portal does so by itself.",
        http="403 Forbidden",
    ),
    Entry(
        "AppRoleMissing",
        ("api",),
        "The application has no app role of the API",
        "The application's token carries no app role of this API; assign the application the {roles} app role "
        "(and grant admin consent).",
        "An app-only token for this API's audience without one of its app roles in `roles`.",
        "In Entra ID, give the application the API's app role (API permissions, Application permission), grant "
        "admin consent, and request a new token.",
        http="403 Forbidden",
    ),
    Entry(
        "StateContention",
        ("api",),
        "The connector's state kept changing",
        "{what} kept changing while being written; try again.",
        "Connect or disconnect met other writers (a fan-out, a pull, another administrator) on every attempt.",
        "Try again; it succeeds once the other writers are done.",
        http="409 Conflict",
    ),
    Entry(
        "SigningKeysUnavailable",
        ("api",),
        "The token signing keys cannot be fetched",
        "The token signing keys could not be fetched; try again shortly.",
        "The connector could not read the authority's OpenID configuration or signing keys (AZURE_AUTHORITY_HOST, "
        "AZURE_TENANT_ID, or the outbound network), so it cannot check any token yet.",
        "Try again shortly; if it lasts, check AZURE_AUTHORITY_HOST and AZURE_TENANT_ID and that the Function App "
        "can reach the authority.",
        http="503 ServiceUnavailable",
    ),
    Entry(
        "SettingMissing",
        ("api",),
        "An app setting is not set",
        "The app setting {setting} is not set.",
        "The Function App lacks a setting the connector needs.",
        "Set it in the Function App's configuration (locally: local.settings.json); README lists every setting.",
        http="500 ConfigurationError",
    ),
    Entry(
        "SettingInvalid",
        ("api",),
        "An app setting is invalid",
        "The app setting {setting} is invalid: {reason}.",
        "A setting's value is not accepted (not an https:// URL, not a number, not a valid queue name...).",
        "Correct the value in the Function App's configuration; `{reason}` says what is expected.",
        http="500 ConfigurationError",
    ),
    Entry(
        "SettingsInvalid",
        ("api",),
        "The app settings are invalid",
        "The app settings are invalid: {reason}.",
        "The settings do not fit together (for example no storage configured at all).",
        "Correct the Function App's configuration as `{reason}` says.",
        http="500 ConfigurationError",
    ),
    Entry(
        "StorageUnreachable",
        ("api",),
        "The connector's storage cannot be reached",
        "The connector's storage cannot be reached; try again.",
        "Table Storage did not answer (network, firewall, or the account's keys or roles).",
        "Try again; if it lasts, check AzureWebJobsStorage and the storage account's network rules and the "
        "Function App identity's storage roles.",
        http="503 ServiceUnavailable",
    ),
    Entry(
        "InternalError",
        ("api",),
        "The connector failed to answer",
        "The connector failed to answer; see its logs.",
        "An unexpected error in the connector while answering (logged, never shown).",
        "Look for the error in Application Insights (or the host's log) and report it with the connector's version.",
        http="500 InternalError",
    ),
)

BY_CODE: dict[str, Entry] = {entry.code: entry for entry in CATALOG}


def notice(code: str, **values: Any) -> Notice:
    """The message of catalog entry `code`, with its placeholders filled."""
    return BY_CODE[code].render(**values)


def text(code: str, **values: Any) -> str:
    return notice(code, **values).text


def catalog_body() -> dict[str, Any]:
    """`GET /api/troubleshooting`: the catalog, no data."""
    return {"items": [entry.to_api() for entry in CATALOG]}


_SCOPES: list[tuple[Scope, str, str]] = [
    ("connector", "The connector's status", "Shown as the connector's `message`, with its code in `messageCode`."),
    (
        "subscription",
        "A subscription's status",
        "Shown on a subscription's row, as its `message`, with its code in `messageCode`.",
    ),
    (
        "api",
        "Error answers of the API",
        'Shown as `{"error": {"code", "message"}}` with the HTTP status named in each entry.',
    ),
]


def render_markdown() -> str:
    """docs/troubleshooting.md, generated from the catalog."""
    lines = [
        "# Troubleshooting the Microsoft Azure connector",
        "",
        "<!-- Generated from core/troubleshooting.py by `make docs`; do not edit by hand. -->",
        "",
        "Every message the connector shows, what causes it and how to fix it. The same catalog produces the",
        "messages (so this page and the connector cannot disagree) and answers `GET /api/troubleshooting`.",
        "Parts in `{braces}` are filled in when the message is shown.",
        "",
    ]
    for scope, heading, intro in _SCOPES:
        entries = [e for e in CATALOG if e.scopes[0] == scope]
        lines += [f"## {heading}", "", intro, ""]
        lines += [f"- [{e.code}](#{e.code.lower()}): {e.title}" for e in CATALOG if scope in e.scopes[1:]]
        lines += [f"- [{e.code}](#{e.code.lower()}): {e.title}" for e in entries]
        lines.append("")
        for e in entries:
            lines += [f"### {e.code}", "", f"**{e.title}**", ""]
            if len(e.scopes) > 1:
                also = " and ".join(heading.lower() for s, heading, _ in _SCOPES if s in e.scopes[1:])
                lines += [f"Also shown in {also}.", ""]
            if e.http:
                lines += [f"HTTP answer: `{e.http}`", ""]
            lines += [f"> {e.message}", "", f"**Cause.** {e.cause}", "", f"**Fix.** {e.fix}", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else DOCS_PATH
    target.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
