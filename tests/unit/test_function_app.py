"""function_app.py indexes like the Functions host would: every function, binding and route."""

from __future__ import annotations

import pytest

from tests.support.platform import fresh_function_app

pytestmark = pytest.mark.unit


def test_every_function_is_wired_with_its_trigger() -> None:
    functions = {f.get_function_name(): f for f in fresh_function_app().get_functions()}
    triggers = {}
    for name, f in functions.items():
        trigger = f.get_trigger()
        assert trigger is not None, name
        triggers[name] = trigger.get_dict_repr()
    http = {
        name: (t["route"], tuple(str(m.value if hasattr(m, "value") else m) for m in t["methods"]))
        for name, t in triggers.items()
        if t["type"] == "httpTrigger"
    }
    assert http == {
        "connector_connect": ("connectors/azure", ("POST",)),
        "connector_get": ("connectors/azure", ("GET",)),
        "connector_disconnect": ("connectors/azure", ("DELETE",)),
        "connector_list": ("connectors", ("GET",)),
        "activities_list": ("activities", ("GET",)),
        "activity_get": ("activities/{id}", ("GET",)),
        "accounts_list": ("accounts", ("GET",)),
        "account_get": ("accounts/{id}", ("GET",)),
        "portal": ("portal/{*path}", ("GET",)),
        "connector_activity_per_day": ("connectors/azure/activity-per-day", ("GET",)),
        "troubleshooting": ("troubleshooting", ("GET",)),
        "policies_list": ("policies", ("GET",)),
        "policy_create": ("policies", ("POST",)),
        "policy_get": ("policies/{id}", ("GET",)),
        "policy_replace": ("policies/{id}", ("PUT",)),
        "policy_delete": ("policies/{id}", ("DELETE",)),
        "policy_templates": ("policy-templates", ("GET",)),
        "alerts_list": ("alerts", ("GET",)),
        "alert_get": ("alerts/{id}", ("GET",)),
        "alert_change": ("alerts/{id}", ("PATCH",)),
    }
    # A browser cannot keep a function key: the host lets every request through and the app
    # requires an access token on every route that carries data (the portal's files and the
    # troubleshooting catalog carry none).
    assert all(
        str(getattr(t["authLevel"], "value", t["authLevel"])).lower() == "anonymous"
        for t in triggers.values()
        if t["type"] == "httpTrigger"
    )
    assert triggers["fanout"]["type"] == "timerTrigger" and triggers["fanout"]["schedule"] == "%FANOUT_SCHEDULE%"
    assert triggers["retention"]["schedule"] == "%RETENTION_SCHEDULE%"
    assert triggers["pull"]["type"] == "queueTrigger"
    assert triggers["pull"]["queueName"] == "%PULL_QUEUE%" and triggers["pull"]["connection"] == "AzureWebJobsStorage"
    assert triggers["alert_notify"]["type"] == "queueTrigger"
    assert triggers["alert_notify"]["queueName"] == "%ALERT_QUEUE%"
    assert len(functions) == 24


def test_importing_the_app_reads_no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_TENANT_ID", "CONNECTOR_API_AUDIENCE", "AzureWebJobsStorage"):
        monkeypatch.delenv(name, raising=False)
    assert fresh_function_app().get_functions()  # settings are read on first use, per worker
