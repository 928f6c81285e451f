"""The pull queue's message: JSON, validated with pydantic on receipt."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from azure.storage.queue import QueueClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.queue_sender import QueueSender

logger = logging.getLogger(__name__)


class PullMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    version: Literal[1] = 1
    subscription_id: str = Field(alias="subscriptionId", pattern=r"^[0-9a-fA-F-]{36}$")
    connection_id: str = Field(alias="connectionId", min_length=1, max_length=64)
    enqueued_at: datetime = Field(alias="enqueuedAt")
    reason: Literal["fanout", "backlog", "throttled"] = "fanout"

    def encode(self) -> str:
        return self.model_dump_json(by_alias=True)


class MalformedMessage(ValueError):
    """The message is not JSON or not a pull message; it is dropped, not retried."""


def decode(body: bytes) -> PullMessage:
    try:
        return PullMessage.model_validate_json(body)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'message'}: {e.get('msg')}" for e in exc.errors()[:3]
        )
        raise MalformedMessage(errors) from exc


class StoragePullQueue:
    """The pull queue in Queue Storage (the clients encode base64, as host.json's messageEncoding expects).

    One message goes through the sync client; the fan-out's many go through `sender`, which keeps
    many sends in flight at once (Queue Storage has no batch send).
    """

    def __init__(self, queue: QueueClient, sender: QueueSender) -> None:
        self._queue = queue
        self._sender = sender

    def send(self, message: PullMessage, *, delay_seconds: int = 0) -> None:
        self._queue.send_message(message.encode(), visibility_timeout=delay_seconds or None)

    def send_many(self, messages: list[PullMessage]) -> None:
        """Every message sent once; the first failure raised after trying them all.

        A send that meets a connection reset or a 5xx is retried by the client's retry policy
        (`core.storage.QUEUE_RETRY`) before it counts as failed.
        """
        failures = self._sender.send_all([m.encode() for m in messages])
        if failures:
            logger.warning("%s of %s pull messages could not be sent: %s", len(failures), len(messages), failures[0])
            raise failures[0]
