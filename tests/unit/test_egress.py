"""Which webhook addresses count as internal, and the save-time refusal of literal ones."""

from __future__ import annotations

import ipaddress

import pytest

from core.errors import InvalidInput
from policies import service
from policies.egress import is_internal, literal_internal_host
from tests.support.policy_world import ADMIN, World

pytestmark = pytest.mark.unit

INTERNAL = [
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1",
    "2001:db8::1",
]  # fmt: skip
PUBLIC = [
    "8.8.8.8", "20.42.0.1", "100.63.255.255", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
]  # fmt: skip


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "internal"),
    [
        ("127.0.0.1", True),
        ("[::1]", True),
        ("::ffff:10.0.0.1", True),
        ("fe80::1%eth0", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("8.8.8.8", False),
        ("hooks.example.com", False),  # a name: checked when sending, where it is resolved
        ("2130706433", False),  # not an address literal to ipaddress; the resolver's answer is checked at send
    ],
)
def test_literal_internal_hosts(host: str, internal: bool) -> None:
    assert literal_internal_host(host) is internal


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/h", "https://[::1]:8443/h", "https://169.254.169.254/latest", "https://localhost/h",
     "https://10.0.0.5/h", "https://[::ffff:192.168.0.1]/h", "https://100.64.1.1/h"],
)  # fmt: skip
def test_a_webhook_to_a_literal_internal_address_is_refused_at_save(url: str) -> None:
    world = World()
    document = {"name": "x", "severity": "low", "kind": "singleActivity", "webhookUrl": url}
    with pytest.raises(InvalidInput) as caught:
        service.create_policy(world.policies, None, world.clock, ADMIN, document, webhook_secret="k" * 32)
    assert caught.value.field == "webhookUrl" and "internal address" in caught.value.message
    policy_id = world.policy()
    with pytest.raises(InvalidInput) as caught:
        service.replace_policy(world.policies, None, world.clock, ADMIN, policy_id, document, webhook_secret="k" * 32)
    assert caught.value.field == "webhookUrl"
    allowed = service.create_policy(world.policies, None, world.clock, ADMIN, document, webhook_secret="k" * 32,
                                    allow_private_webhooks=True)  # fmt: skip
    assert allowed.definition.webhook_url == url


def test_a_public_webhook_is_accepted() -> None:
    world = World()
    document = {"name": "x", "severity": "low", "kind": "singleActivity", "webhookUrl": "https://hooks.example.com/h"}
    record = service.create_policy(world.policies, None, world.clock, ADMIN, document, webhook_secret="k" * 32)
    assert record.definition.webhook_url == "https://hooks.example.com/h"
