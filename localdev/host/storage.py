"""Storage connections as the Functions host resolves a binding's `connection` setting.

The setting named by `connection` (default `AzureWebJobsStorage`; a name `X` is also looked up
as `AzureWebJobsX`) holds a connection string, `UseDevelopmentStorage=true` meaning Azurite on its
default ports. Identity-based connections (`<name>__queueServiceUri`, ...), which only deployed apps
use, are not supported by the local host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.storage.queue import LinearRetry, QueueClient

from core.transport import pooled_transport
from localdev.azurite import Azurite
from localdev.host.errors import HostStartupError

DEFAULT_CONNECTION = "AzureWebJobsStorage"
# UseDevelopmentStorage=true: Azurite on its default ports.
DEV_CONNECTION_STRING = Azurite(blob_port=10000, queue_port=10001, table_port=10002).connection_string

_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 60}


def _retry(retry: bool = True) -> LinearRetry:
    """Fail fast on a local emulator: the SDK's default retry waits 15 s and more between attempts."""
    return LinearRetry(backoff=1, random_jitter_range=1, retry_total=3 if retry else 0)


def _is_dev_storage(value: str) -> bool:
    parts = dict(
        (k.strip().lower(), v.strip().lower()) for k, _, v in (p.partition("=") for p in value.split(";") if p.strip())
    )
    return parts.get("usedevelopmentstorage") == "true"


@dataclass(frozen=True)
class StorageAccount:
    """One storage account's queue service, as a binding's connection names it."""

    connection: str
    connection_string: str

    def queue(self, name: str, retry: bool = True) -> QueueClient:
        """A client for one queue, sending and receiving raw text (no encode or decode policy).

        Without `retry` a failing call fails at once (for polling, which backs off on its own).
        """
        # The real host's queue work costs the Python worker nothing: keep the local host's cheap
        # (environment read once, a connection per worker thread).
        return QueueClient.from_connection_string(
            self.connection_string, name, retry_policy=_retry(retry), transport=pooled_transport(), **_CLIENT_OPTIONS
        )


def resolve_account(connection: str | None, settings: Mapping[str, str], function_name: str) -> StorageAccount:
    """The storage account a binding's `connection` names, or a clear start error."""
    name = connection or DEFAULT_CONNECTION
    for candidate in (name, f"AzureWebJobs{name}"):
        value = settings.get(candidate)
        if value:
            if _is_dev_storage(value):
                return StorageAccount(candidate, connection_string=DEV_CONNECTION_STRING)
            if "=" not in value:
                raise HostStartupError(
                    f"function {function_name!r}: app setting {candidate!r} is not a storage connection string"
                )
            return StorageAccount(candidate, connection_string=value)
    raise HostStartupError(
        f"function {function_name!r}: the storage connection {name!r} is not configured; set the app setting "
        f"{name!r} to a connection string (UseDevelopmentStorage=true for Azurite on its default ports; the "
        "local host does not support identity-based connections)"
    )
