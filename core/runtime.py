"""The composition root: settings validated and every port built here, once per worker.

Triggers call `get_runtime()` and hand its typed ports (`core.ports`) to plain handlers; tests and
the local tooling may `install_runtime()` one they built themselves (Azurite-backed,
emulator-backed, with a fake clock) instead of patching modules.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.data.tables import TableServiceClient
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.storage.queue import QueueServiceClient, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient as AsyncQueueClient

from activities.reader import ActivityQueries
from activities.writer import ActivityStore
from core.arm import ArmClient
from core.auth import SigningKeys, TokenValidator, pipeline_fetcher
from core.clock import Clock, SystemClock
from core.ports import (
    ActivityReader,
    ActivityWriter,
    AlertQueue,
    AlertStore,
    Arm,
    ConnectorState,
    PolicyStore,
    PullQueue,
    SubscriptionState,
)
from core.queue_sender import QueueSender
from core.settings import Settings, load_settings
from core.storage import CONNECTOR_TABLE, QUEUE_RETRY, Storage, queue_retry
from core.transport import async_transport, pooled_transport
from ingestion.hostconfig import max_dequeue_count
from ingestion.messages import StoragePullQueue
from ingestion.pull import PullPorts
from policies.engine import PolicyEngine
from policies.notify import HttpWebhookPoster, NotifyPorts, StorageAlertQueue
from policies.store import TableAlertStore, TablePolicyStore
from state.tables import TableConnectorState, TableSubscriptionState

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    tokens: TokenValidator
    arm: Arm
    connector: ConnectorState
    subscriptions: SubscriptionState
    activities: ActivityWriter
    reader: ActivityReader
    pull_queue: PullQueue
    policies: PolicyStore
    alerts: AlertStore
    alert_queue: AlertQueue
    engine: PolicyEngine  # evaluates what `activities` stores for the first time
    storage: Storage  # the clients behind the storage ports (tables created at start, closed at the end)

    @cached_property
    def pull(self) -> PullPorts:
        """The pull's ports, bundled once."""
        return PullPorts(
            self.connector, self.subscriptions, self.arm, self.activities, self.pull_queue, self.clock, self.settings
        )

    @cached_property
    def notify(self) -> NotifyPorts:
        """The webhook delivery's ports, bundled once."""
        return NotifyPorts(
            self.alerts,
            self.policies,
            self.alert_queue,
            HttpWebhookPoster(allow_private=self.settings.alert_webhook_allow_private),
            self.clock,
            self.settings.alert_webhook_secret,
            max_attempts=max_dequeue_count(),
        )


def arm_credential(settings: Settings) -> TokenCredential:
    """The connector's own identity for ARM: a client secret locally, managed identity in Azure."""
    if settings.client_secret:
        settings.require("AZURE_TENANT_ID", "AZURE_CLIENT_ID")
        assert settings.tenant_id and settings.client_id
        return ClientSecretCredential(
            settings.tenant_id,
            settings.client_id,
            settings.client_secret,
            authority=settings.authority_host,
            disable_instance_discovery=not settings.public_cloud_authority,
        )
    if settings.client_id:
        return ManagedIdentityCredential(client_id=settings.client_id)
    return ManagedIdentityCredential()


def _storage_managed_identity(settings: Settings) -> bool:
    """Whether the storage clients sign in as the managed identity (else the default credential chain)."""
    return (settings.storage_credential or "").lower() == "managedidentity"


def _storage_credential(settings: Settings) -> TokenCredential:
    if _storage_managed_identity(settings):
        return ManagedIdentityCredential(client_id=settings.storage_client_id)  # None: the system identity
    return DefaultAzureCredential()


def _async_storage_credential(settings: Settings) -> AsyncTokenCredential:
    """`_storage_credential` for the async clients (the fan-out's sender)."""
    if _storage_managed_identity(settings):
        return AsyncManagedIdentityCredential(client_id=settings.storage_client_id)
    return AsyncDefaultAzureCredential()


def _queue_uri(settings: Settings) -> str:
    return settings.storage_queue_uri or f"https://{settings.storage_account_name}.queue.core.windows.net"


def pull_sender(settings: Settings, **client_options: Any) -> QueueSender:
    """The fan-out's sender: the pull queue through the async client, same encoding and retries as the sync one.

    `client_options` go to the client as well (a benchmark's `raw_response_hook`).
    """

    def make_client(resources: AsyncExitStack) -> AsyncQueueClient:
        options: dict[str, Any] = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "transport": async_transport(),
            **QUEUE_RETRY,
            **client_options,
        }
        if settings.storage_connection_string:
            return AsyncQueueClient.from_connection_string(
                settings.storage_connection_string, settings.pull_queue, **options
            )
        credential = _async_storage_credential(settings)
        resources.push_async_callback(credential.close)
        return AsyncQueueClient(_queue_uri(settings), settings.pull_queue, credential=credential, **options)

    return QueueSender(make_client)


def build_storage(settings: Settings) -> Storage:
    if settings.storage_connection_string:
        tables = TableServiceClient.from_connection_string(
            settings.storage_connection_string, transport=pooled_transport()
        )
        queues = QueueServiceClient.from_connection_string(
            settings.storage_connection_string, transport=pooled_transport(), retry_policy=queue_retry()
        )
    else:
        account = settings.storage_account_name
        table_uri = settings.storage_table_uri or f"https://{account}.table.core.windows.net"
        credential = _storage_credential(settings)
        tables = TableServiceClient(endpoint=table_uri, credential=credential, transport=pooled_transport())
        queues = QueueServiceClient(
            account_url=_queue_uri(settings),
            credential=credential,
            transport=pooled_transport(),
            retry_policy=queue_retry(),
        )
    return Storage(
        tables,
        queues,
        table_prefix=settings.table_prefix,
        pull_queue=settings.pull_queue,
        alert_queue=settings.alert_queue,
        pull_sender=pull_sender(settings),
    )


def build_arm(settings: Settings, credential: TokenCredential | None = None) -> ArmClient:
    return ArmClient(
        settings.arm_endpoint,
        credential or arm_credential(settings),
        settings.arm_scope,
        max_inline_wait=settings.pull_max_inline_wait_seconds,
    )


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    credential: TokenCredential | None = None,
    storage: Storage | None = None,
) -> Runtime:
    settings.require("AZURE_TENANT_ID", "CONNECTOR_API_AUDIENCE")
    assert settings.tenant_id and settings.api_audience
    clock = clock or SystemClock()
    keys = SigningKeys(settings.openid_configuration_url, pipeline_fetcher())
    tokens = TokenValidator(
        keys=keys,
        issuer=settings.issuer,
        audience=settings.api_audience,
        tenant_id=settings.tenant_id,
        clock=clock,
        leeway_seconds=settings.token_leeway_seconds,
    )
    storage = storage or build_storage(settings)
    connector_table = storage.table(CONNECTOR_TABLE)
    policies = TablePolicyStore(storage)
    alerts = TableAlertStore(storage, clock=clock)
    alert_queue = StorageAlertQueue(storage.alert_queue, storage.alert_poison_queue)
    engine = PolicyEngine(policies, alerts, alert_queue, clock, daily_limit=settings.policy_daily_alert_limit)
    return Runtime(
        settings=settings,
        clock=clock,
        tokens=tokens,
        arm=build_arm(settings, credential),
        connector=TableConnectorState(connector_table),
        subscriptions=TableSubscriptionState(connector_table),
        activities=ActivityStore(storage, evaluator=engine),
        reader=ActivityQueries(storage, clock=clock),
        pull_queue=StoragePullQueue(storage.pull_queue, storage.pull_sender),
        policies=policies,
        alerts=alerts,
        alert_queue=alert_queue,
        engine=engine,
        storage=storage,
    )


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The worker's runtime, built on first use. Raises SettingsError (not cached) on bad settings."""
    global _runtime
    with _lock:
        if _runtime is None:
            runtime = build_runtime(load_settings())
            runtime.storage.ensure()
            _runtime = runtime
        return _runtime


def install_runtime(runtime: Runtime | None) -> None:
    """Use this runtime for every trigger in this process (tests, local tooling); None resets."""
    global _runtime
    with _lock:
        _runtime = runtime


def configure_logging() -> None:
    for name in ("azure", "azure.core.pipeline.policies.http_logging_policy", "msal", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
