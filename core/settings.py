"""Every app setting the connector reads, validated once per worker.

Each field's alias is the app setting's (environment variable's) exact name. `setting_names()`
is the list that `local.settings.sample.json`, the README and `infra/` must all carry.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import SettingsError
from core.troubleshooting import text

PUBLIC_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


# The webhook signing key: at least as long as HMAC-SHA256's output.
MIN_WEBHOOK_SECRET_BYTES = 32

NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    """The connector's settings. Build with `load_settings()` to get a readable error."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    # Storage: a connection string, or identity-based settings (managed identity in Azure).
    storage_connection_string: str | None = Field(None, alias="AzureWebJobsStorage")
    storage_account_name: str | None = Field(None, alias="AzureWebJobsStorage__accountName")
    storage_queue_uri: str | None = Field(None, alias="AzureWebJobsStorage__queueServiceUri")
    storage_table_uri: str | None = Field(None, alias="AzureWebJobsStorage__tableServiceUri")
    storage_blob_uri: str | None = Field(None, alias="AzureWebJobsStorage__blobServiceUri")
    storage_credential: str | None = Field(None, alias="AzureWebJobsStorage__credential")
    storage_client_id: str | None = Field(None, alias="AzureWebJobsStorage__clientId")

    # Azure and Entra ID.
    arm_endpoint: str = Field("https://management.azure.com", alias="ARM_ENDPOINT")
    authority_host: str = Field("https://login.microsoftonline.com", alias="AZURE_AUTHORITY_HOST")
    tenant_id: str | None = Field(None, alias="AZURE_TENANT_ID")
    client_id: str | None = Field(None, alias="AZURE_CLIENT_ID")
    client_secret: str | None = Field(None, alias="AZURE_CLIENT_SECRET", repr=False)
    api_audience: str | None = Field(None, alias="CONNECTOR_API_AUDIENCE")
    # The portal's (single-page app's) client id; by default the API's own app registration's.
    portal_client_id: str | None = Field(None, alias="PORTAL_CLIENT_ID")
    token_leeway_seconds: NonNegative = Field(120, alias="TOKEN_CLOCK_SKEW_SECONDS")

    # Fan-out and pull.
    fanout_schedule: str = Field("0 */5 * * * *", alias="FANOUT_SCHEDULE")
    pull_queue: str = Field("activity-pull", alias="PULL_QUEUE")
    pull_overlap_seconds: NonNegative = Field(900, alias="PULL_OVERLAP_SECONDS")
    pull_lag_seconds: NonNegative = Field(60, alias="PULL_LAG_SECONDS")
    pull_max_pages: Positive = Field(25, alias="PULL_MAX_PAGES")
    pull_max_window_minutes: Positive = Field(360, alias="PULL_MAX_WINDOW_MINUTES")
    pull_max_inline_wait_seconds: NonNegative = Field(10, alias="PULL_MAX_INLINE_WAIT_SECONDS")
    pull_lease_seconds: Positive = Field(600, alias="PULL_LEASE_SECONDS")

    # Policies and alerts.
    policy_daily_alert_limit: Positive = Field(100, alias="POLICY_DAILY_ALERT_LIMIT")
    alert_queue: str = Field("alert-notify", alias="ALERT_QUEUE")
    alert_webhook_secret: str | None = Field(None, alias="ALERT_WEBHOOK_SECRET", repr=False)
    # Local development and tests only (their receivers listen on loopback): never set in Azure.
    alert_webhook_allow_private: bool = Field(False, alias="ALERT_WEBHOOK_ALLOW_PRIVATE")

    # Retention and storage names.
    retention_days: Positive = Field(180, alias="ACTIVITY_RETENTION_DAYS")
    retention_schedule: str = Field("0 30 2 * * *", alias="RETENTION_SCHEDULE")
    table_prefix: str = Field("azconn", alias="STORAGE_TABLE_PREFIX", pattern=r"^[A-Za-z][A-Za-z0-9]{0,29}$")

    @field_validator("arm_endpoint", "authority_host")
    @classmethod
    def _https_url(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (bearer tokens are never sent over plain http)")
        return value

    @field_validator("alert_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if not value:
            return None  # unset (the local sample's empty string): policies cannot have webhooks
        if value.strip().lower().startswith(("@microsoft.keyvault(", "@microsoft.appconfiguration(")):
            # The platform passes a reference it could not resolve as it is: never sign with it.
            raise ValueError(
                "is a reference the platform could not resolve: give the app's identity read access to "
                "its store (Key Vault Secrets User on a vault; the app resolves references with that identity)"
            )
        if len(value.encode("utf-8")) < MIN_WEBHOOK_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes (a random key, e.g. `openssl rand -hex 32`)"
            )
        return value

    @field_validator("pull_queue", "alert_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,54}[a-z0-9]", value):
            raise ValueError(
                "must be a valid queue name: 3-56 lower-case letters, digits and single hyphens "
                "(the host adds '-poison')"
            )
        return value

    @field_validator("fanout_schedule", "retention_schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError("must be a six-field NCRONTAB expression: second minute hour day month weekday")
        return value

    @model_validator(mode="after")
    def _distinct_queues(self) -> Settings:
        if self.alert_queue == self.pull_queue:
            raise ValueError("ALERT_QUEUE must differ from PULL_QUEUE")
        return self

    @model_validator(mode="after")
    def _storage_configured(self) -> Settings:
        if not self.storage_connection_string and not (
            self.storage_account_name or (self.storage_queue_uri and self.storage_table_uri)
        ):
            raise ValueError(
                "AzureWebJobsStorage is not set: give a connection string, or identity-based "
                "AzureWebJobsStorage__accountName (or __queueServiceUri and __tableServiceUri)"
            )
        return self

    # Derived values.
    @property
    def public_cloud_authority(self) -> bool:
        host = self.authority_host.removeprefix("https://").split("/")[0].lower()
        return host in PUBLIC_AUTHORITY_HOSTS

    @property
    def portal_client(self) -> str | None:
        """PORTAL_CLIENT_ID, else the client id in CONNECTOR_API_AUDIENCE (`api://<client id>`)."""
        if self.portal_client_id:
            return self.portal_client_id
        return self.api_audience.removeprefix("api://").rstrip("/") if self.api_audience else None

    @property
    def arm_scope(self) -> str:
        return f"{self.arm_endpoint}/.default"

    @property
    def issuer(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}/v2.0"

    @property
    def openid_configuration_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def require(self, *names: str) -> None:
        """Raise SettingsError naming the first of these settings (by app-setting name) that is unset."""
        by_alias = {str(f.alias): key for key, f in type(self).model_fields.items()}
        for name in names:
            if not getattr(self, by_alias[name]):
                raise SettingsError(text("SettingMissing", setting=name), setting=name)


def setting_names() -> list[str]:
    """Every app setting the code reads, by its exact name."""
    return [str(f.alias) for f in Settings.model_fields.values()]


def default_values() -> dict[str, str]:
    """Every setting that has a default, as the app-setting strings the host would see."""
    return {str(f.alias): str(f.default) for f in Settings.model_fields.values() if f.default is not None}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Validate the settings from the environment (or a given mapping), naming any bad one."""
    try:
        if environ is None:
            return Settings()
        known = set(setting_names())
        return Settings.model_validate({k: v for k, v in environ.items() if k in known})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc") or ()
        name = str(loc[0]) if loc else None
        if name and name not in setting_names():
            field = Settings.model_fields.get(name)
            name = str(field.alias) if field is not None else name
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if name:
            raise SettingsError(text("SettingInvalid", setting=name, reason=message), setting=name) from None
        raise SettingsError(text("SettingsInvalid", reason=message)) from None
