"""An account's summary stays storable however many subscriptions one identity acts in."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from activities.layout import MAX_ACCOUNT_SUBSCRIPTIONS, MAX_STRING_CHARS, account_api, merge_account
from ingestion.models import Activity, ActivityUser

START = datetime(2026, 11, 26, 10, tzinfo=UTC)
AUTOMATION = ActivityUser(id="sp-1", upn=None, name="deploy-bot", type="servicePrincipal", app_id="app-1")


def _activity(n: int, subscription_id: str) -> Activity:
    return Activity(
        id=f"evt-{n}",
        timestamp=START + timedelta(seconds=n),
        ingested_at=START,
        subscription_id=subscription_id,
        user=AUTOMATION,
        action="Microsoft.Resources/deployments/write",
        action_type="write",
    )


def test_an_identity_in_thousands_of_subscriptions_keeps_a_bounded_list_and_an_exact_count() -> None:
    subscriptions = [str(uuid.UUID(int=i)) for i in range(2_000)]
    summary = None
    for page in range(0, len(subscriptions), 200):  # one merge per stored page, as the writer does
        chunk = [_activity(page + i, sub) for i, sub in enumerate(subscriptions[page : page + 200])]
        summary = merge_account(summary, "sp-1", chunk)
    assert summary is not None
    listed = json.loads(summary["subscriptions"])
    assert len(listed) == MAX_ACCOUNT_SUBSCRIPTIONS
    assert set(listed) == set(subscriptions[:MAX_ACCOUNT_SUBSCRIPTIONS])  # the first counted are kept
    assert len(summary["subscriptions"]) < MAX_STRING_CHARS
    body = account_api(summary)
    assert body["activityCount"] == 2_000 and body["subscriptionsTruncated"] is True


def test_a_listed_subscription_acting_again_changes_nothing_and_small_accounts_are_not_cut() -> None:
    summary = merge_account(None, "sp-1", [_activity(0, "s1"), _activity(1, "s2")])
    summary = merge_account(summary, "sp-1", [_activity(2, "s1")])
    body = account_api(summary)
    assert body["subscriptions"] == ["s1", "s2"] and body["subscriptionsTruncated"] is False
    assert body["activityCount"] == 3
