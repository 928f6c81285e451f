"""Values the settings refuse at start, naming the setting."""

from __future__ import annotations

import pytest

from core.errors import SettingsError
from core.settings import MIN_WEBHOOK_SECRET_BYTES, load_settings

pytestmark = pytest.mark.unit

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


@pytest.mark.parametrize("secret", ["s3cret-value", "x" * (MIN_WEBHOOK_SECRET_BYTES - 1)])
def test_a_short_webhook_secret_is_refused(secret: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "ALERT_WEBHOOK_SECRET": secret})
    assert caught.value.setting == "ALERT_WEBHOOK_SECRET"
    assert "32 bytes" in str(caught.value)
    assert secret not in str(caught.value)  # the value is not echoed


@pytest.mark.parametrize(
    "reference",
    [
        "@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/webhook/)",
        " @microsoft.keyvault(VaultName=contoso-kv;SecretName=webhook)",
        "@Microsoft.AppConfiguration(Endpoint=https://contoso.azconfig.io; Key=webhook-secret)",
    ],
)
def test_an_unresolved_platform_reference_is_refused_not_used_as_the_key(reference: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "ALERT_WEBHOOK_SECRET": reference})
    assert caught.value.setting == "ALERT_WEBHOOK_SECRET"
    assert "Key Vault Secrets User" in str(caught.value)


def test_an_empty_webhook_secret_is_unset_and_a_long_one_is_kept() -> None:
    assert load_settings({**BASE, "ALERT_WEBHOOK_SECRET": ""}).alert_webhook_secret is None
    assert load_settings(BASE).alert_webhook_secret is None
    secret = "é" * 16  # 32 bytes in UTF-8
    assert load_settings({**BASE, "ALERT_WEBHOOK_SECRET": secret}).alert_webhook_secret == secret
