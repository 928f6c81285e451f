"""Which paging links the ARM adapter follows: only ARM_ENDPOINT's scheme, host and port, and the expected path."""

from __future__ import annotations

from typing import Any

import pytest

from core.arm import ArmClient, ArmLinkRefused

pytestmark = pytest.mark.unit

SUB = "6b1f2e3d-4c5b-4a69-8778-9a0b1c2d3e4f"
OTHER = "00000000-1111-2222-3333-444444444444"
PATH = f"/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
QUERY = "?api-version=2015-04-01&$filter=x&$skipToken=abc"


class _NoCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("no request is made")


@pytest.fixture
def arm() -> ArmClient:
    return ArmClient("https://management.azure.com", _NoCredential(), "https://management.azure.com/.default")


@pytest.mark.parametrize(
    "url",
    [
        f"https://management.azure.com{PATH}{QUERY}",
        f"https://MANAGEMENT.azure.com:443{PATH.replace('Microsoft.Insights', 'microsoft.insights')}{QUERY}",
        f"https://management.azure.com{PATH.replace('/values', '%2Fvalues')}{QUERY}",
    ],
)
def test_links_to_this_subscriptions_activity_log_are_followed(arm: ArmClient, url: str) -> None:
    assert arm.check_activity_log_link(SUB, url) == url


@pytest.mark.parametrize(
    "url",
    [
        f"https://evil.example{PATH}{QUERY}",
        f"http://management.azure.com{PATH}{QUERY}",
        f"https://management.azure.com:8443{PATH}{QUERY}",
        f"https://management.azure.com.evil.example{PATH}{QUERY}",
        f"https://management.azure.com@evil.example{PATH}{QUERY}",
        f"https://user:pw@management.azure.com{PATH}{QUERY}",
        f"https://management.azure.com{PATH.replace(SUB, OTHER)}{QUERY}",
        f"https://management.azure.com/subscriptions{QUERY}",
        f"https://management.azure.com{PATH}/../../{OTHER}/providers/Microsoft.Insights/eventtypes/management/values",
        f"https://management.azure.com{PATH}%2F..%2F..%2F{OTHER}",
        f"https://management.azure.com{PATH}#frag",
        f"https://management.azure.com:notaport{PATH}",
        f"//evil.example{PATH}",
        f"{PATH}{QUERY}",
        "",
    ],
)
def test_anything_else_is_refused_without_showing_the_query(arm: ArmClient, url: str) -> None:
    with pytest.raises(ArmLinkRefused) as caught:
        arm.check_activity_log_link(SUB, url)
    assert "skipToken" not in caught.value.message


def test_the_subscription_list_link_must_be_the_list(arm: ArmClient) -> None:
    good = "https://management.azure.com/subscriptions?api-version=2022-12-01&$skipToken=1"
    assert arm.check_link(good, "/subscriptions") == good
    with pytest.raises(ArmLinkRefused):
        arm.check_link(f"https://management.azure.com{PATH}", "/subscriptions")
