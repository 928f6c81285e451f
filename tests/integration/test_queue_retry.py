"""The pull queue's client retries what a burst of sends can meet: connection resets."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from core.runtime import build_storage
from core.settings import load_settings
from ingestion.messages import PullMessage, StoragePullQueue, decode
from localdev.azurite import Azurite
from localdev.proxy import LoopbackProxy

pytestmark = pytest.mark.integration


def test_sends_that_meet_connection_resets_are_retried_and_each_arrives_once(azurite: Azurite) -> None:
    queue_name = f"resets-{uuid.uuid4().hex[:8]}"
    direct = build_storage(load_settings({"AzureWebJobsStorage": azurite.connection_string, "PULL_QUEUE": queue_name}))
    try:
        direct.pull_queue.create_queue()
        subs = [str(uuid.UUID(int=n + 1)) for n in range(40)]
        messages = [PullMessage(subscription_id=s, connection_id="c1", enqueued_at=datetime.now(UTC)) for s in subs]
        with LoopbackProxy(azurite.queue_port, resets=3) as proxy:
            proxied = azurite.connection_string_via(queue=proxy.port)
            storage = build_storage(load_settings({"AzureWebJobsStorage": proxied, "PULL_QUEUE": queue_name}))
            try:
                StoragePullQueue(storage.pull_queue, storage.pull_sender).send_many(messages)  # the retries at work
            finally:
                storage.close()
            assert proxy.reset == 3
        pages = direct.pull_queue.receive_messages(messages_per_page=32, visibility_timeout=600).by_page()
        sent = Counter(decode(m.content).subscription_id for page in pages for m in page)
        assert set(sent) == set(subs) and set(sent.values()) == {1}
    finally:
        direct.close()
