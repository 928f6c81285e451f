"""host.json: the Functions host's defaults, TimeSpans, and clear errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localdev.host.errors import HostStartupError
from localdev.host.hostjson import HostConfig, QueuesOptions, parse_timespan

pytestmark = pytest.mark.unit


def test_defaults_match_the_functions_host() -> None:
    config = HostConfig.from_dict({"version": "2.0"})
    assert config.route_prefix == "api"
    assert config.queues == QueuesOptions(
        batch_size=16,
        new_batch_threshold=8,
        max_polling_interval=60.0,
        visibility_timeout=0.0,
        max_dequeue_count=5,
        message_encoding="base64",
    )
    assert config.function_timeout is None


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert HostConfig.load(tmp_path / "host.json") == HostConfig()


def test_values_are_read_case_insensitively(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "version": "2.0",
        "functionTimeout": "00:10:00",
        "Extensions": {
            "HTTP": {"routePrefix": "/v1/"},
            "queues": {
                "BatchSize": 4,
                "maxPollingInterval": "00:00:02",
                "visibilityTimeout": "00:00:30",
                "maxDequeueCount": 2,
                "messageEncoding": "None",
            },
        },
    }
    path = tmp_path / "host.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    config = HostConfig.load(path)
    assert config.route_prefix == "v1"
    assert config.function_timeout == 600.0
    assert config.queues == QueuesOptions(4, 2, 2.0, 30.0, 2, "none")


def test_empty_route_prefix_is_allowed() -> None:
    assert HostConfig.from_dict({"extensions": {"http": {"routePrefix": ""}}}).route_prefix == ""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:02", 2.0),
        ("00:01", 60.0),
        ("1.02:03:04", 93784.0),
        ("00:00:00.250", 0.25),
        ("00:00:00.1234567", 0.1234567),
    ],
)
def test_timespans(text: str, seconds: float) -> None:
    assert parse_timespan(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize("value", [2000, "2 seconds", "00:61:00", "25:00:00", True, None])
def test_bad_timespans(value: object) -> None:
    with pytest.raises(HostStartupError, match="TimeSpan"):
        parse_timespan(value, "host.json: x")


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ({"batchSize": 0}, "batchSize must be between 1 and 32"),
        ({"batchSize": 33}, "batchSize must be between 1 and 32"),
        ({"batchSize": "many"}, "batchSize must be an integer"),
        ({"newBatchThreshold": -1}, "newBatchThreshold must not be negative"),
        ({"maxDequeueCount": 0}, "maxDequeueCount must be at least 1"),
        ({"maxPollingInterval": "00:00:00.050"}, "at least 100 ms"),
        ({"messageEncoding": "utf8"}, "messageEncoding"),
        ({"visibilityTimeout": 30}, "visibilityTimeout must be a TimeSpan"),
    ],
)
def test_bad_queue_settings_are_clear_errors(queues: dict[str, Any], message: str) -> None:
    with pytest.raises(HostStartupError, match=message):
        HostConfig.from_dict({"version": "2.0", "extensions": {"queues": queues}})


def test_other_errors(tmp_path: Path) -> None:
    with pytest.raises(HostStartupError, match="version"):
        HostConfig.from_dict({"version": "1.0"})
    path = tmp_path / "host.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(HostStartupError, match="not valid JSON"):
        HostConfig.load(path)
