"""The fan-out's sender (core/queue_sender.py) against Azurite, through the app's own builder."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from azure.core.exceptions import ResourceNotFoundError

from core.runtime import build_storage
from core.settings import load_settings
from core.storage import Storage
from core.transport import async_transport
from ingestion.messages import PullMessage, StoragePullQueue, decode
from localdev.azurite import Azurite

pytestmark = pytest.mark.integration


@pytest.fixture
def storage(azurite: Azurite) -> Iterator[Storage]:
    built = build_storage(
        load_settings(
            {"AzureWebJobsStorage": azurite.connection_string, "PULL_QUEUE": f"sender-{uuid.uuid4().hex[:8]}"}
        )
    )
    built.pull_queue.create_queue()
    yield built
    built.close()


def _messages(n: int) -> list[PullMessage]:
    now = datetime.now(UTC)
    return [
        PullMessage(subscription_id=str(uuid.UUID(int=i + 1)), connection_id="c1", enqueued_at=now) for i in range(n)
    ]


def _received(storage: Storage) -> Counter[str]:
    pages = storage.pull_queue.receive_messages(messages_per_page=32, visibility_timeout=600).by_page()
    return Counter(decode(m.content).subscription_id for page in pages for m in page)


def test_many_messages_each_arrive_once_and_the_host_can_decode_them(storage: Storage) -> None:
    messages = _messages(300)  # more than the sends kept in flight at once
    StoragePullQueue(storage.pull_queue, storage.pull_sender).send_many(messages)
    received = _received(storage)
    assert set(received) == {m.subscription_id for m in messages} and set(received.values()) == {1}


def test_sending_nothing_starts_nothing(storage: Storage) -> None:
    assert storage.pull_sender.send_all([]) == []
    assert storage.pull_sender._thread is None


def test_callers_that_run_an_event_loop_themselves_can_send(storage: Storage) -> None:
    async def inside_a_loop() -> None:  # an async trigger calling the sync port would be here
        StoragePullQueue(storage.pull_queue, storage.pull_sender).send_many(_messages(5))

    asyncio.run(inside_a_loop())
    assert sum(_received(storage).values()) == 5


def test_a_closed_sender_starts_again_on_the_next_send(storage: Storage) -> None:
    queue = StoragePullQueue(storage.pull_queue, storage.pull_sender)
    queue.send_many(_messages(3))
    storage.pull_sender.close()
    assert storage.pull_sender._thread is None
    queue.send_many(_messages(3))
    assert sum(_received(storage).values()) == 6


def test_every_message_is_tried_and_the_first_failure_is_raised(azurite: Azurite) -> None:
    missing = build_storage(
        load_settings({"AzureWebJobsStorage": azurite.connection_string, "PULL_QUEUE": "never-created"})
    )
    try:
        failures = missing.pull_sender.send_all(["a", "b", "c"])
        assert len(failures) == 3 and all(isinstance(f, ResourceNotFoundError) for f in failures)
        with pytest.raises(ResourceNotFoundError):
            StoragePullQueue(missing.pull_queue, missing.pull_sender).send_many(_messages(2))
    finally:
        missing.close()


def test_the_async_transport_trusts_the_ca_bundle_once_for_all_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    async def built() -> ssl.SSLContext:
        transport = async_transport()
        try:
            assert transport.session is not None
            context = transport.session.connector._ssl  # no public getter
            assert isinstance(context, ssl.SSLContext)
            return context
        finally:
            await transport.close()

    context = asyncio.run(built())
    # The bundle's CA is in the one context the connector verifies every connection with.
    assert ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode()) in context.get_ca_certs(binary_form=True)
