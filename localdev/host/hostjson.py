"""The parts of `host.json` the local host honours, with the Functions host's defaults.

Keys are matched case-insensitively, as the Functions host (.NET configuration) does.
TimeSpan values are strings such as "00:00:02", "1.00:00:00" or "00:00:00.250". A bare number is
refused: the v1 `host.json` read it as milliseconds, the v2 host reads it as days.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.host.errors import HostStartupError

_TIMESPAN = re.compile(
    r"^\s*(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})(?::(?P<seconds>\d{1,2})(?:\.(?P<fraction>\d{1,7}))?)?\s*$"
)

MAX_BATCH_SIZE = 32
MIN_POLLING_INTERVAL = 0.1


def parse_timespan(value: object, what: str) -> float:
    """Seconds from a .NET TimeSpan string: "[d.]hh:mm[:ss[.fffffff]]"."""
    if isinstance(value, str):
        m = _TIMESPAN.match(value)
        if m:
            hours, minutes = int(m["hours"]), int(m["minutes"])
            seconds = int(m["seconds"] or 0)
            if hours > 23 or minutes > 59 or seconds > 59:
                raise HostStartupError(f"{what}: {value!r} is not a valid TimeSpan")
            fraction = float("0." + m["fraction"]) if m["fraction"] else 0.0
            return int(m["days"] or 0) * 86400 + hours * 3600 + minutes * 60 + seconds + fraction
    raise HostStartupError(f'{what} must be a TimeSpan such as "00:00:30", not {value!r}')


def _get(section: Mapping[str, Any], key: str) -> Any:
    lowered = key.lower()
    for k, v in section.items():
        if k.lower() == lowered:
            return v
    return None


def _section(section: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    current: Any = section
    for key in path:
        current = _get(current, key) if isinstance(current, Mapping) else None
        if current is None:
            return {}
    if not isinstance(current, Mapping):
        raise HostStartupError(f"host.json: {'.'.join(path)} must be an object")
    return current


def _int(section: Mapping[str, Any], key: str, default: int, what: str) -> int:
    value = _get(section, key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise HostStartupError(f"host.json: {what} must be an integer, not {value!r}")
    try:
        return int(value)
    except ValueError:
        raise HostStartupError(f"host.json: {what} must be an integer, not {value!r}") from None


@dataclass(frozen=True)
class QueuesOptions:
    """`extensions.queues`, with the Storage extension's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> QueuesOptions:
        batch_size = _int(section, "batchSize", 16, "extensions.queues.batchSize")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise HostStartupError(
                f"host.json: extensions.queues.batchSize must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}"
            )
        threshold = _int(section, "newBatchThreshold", batch_size // 2, "extensions.queues.newBatchThreshold")
        if threshold < 0:
            raise HostStartupError("host.json: extensions.queues.newBatchThreshold must not be negative")
        raw_interval = _get(section, "maxPollingInterval")
        interval = (
            60.0
            if raw_interval is None
            else parse_timespan(raw_interval, "host.json: extensions.queues.maxPollingInterval")
        )
        if interval < MIN_POLLING_INTERVAL:
            raise HostStartupError("host.json: extensions.queues.maxPollingInterval must be at least 100 ms")
        raw_visibility = _get(section, "visibilityTimeout")
        visibility = (
            0.0
            if raw_visibility is None
            else parse_timespan(raw_visibility, "host.json: extensions.queues.visibilityTimeout")
        )
        max_dequeue = _int(section, "maxDequeueCount", 5, "extensions.queues.maxDequeueCount")
        if max_dequeue < 1:
            raise HostStartupError("host.json: extensions.queues.maxDequeueCount must be at least 1")
        encoding = _get(section, "messageEncoding")
        encoding = "base64" if encoding is None else str(encoding).lower()
        if encoding not in ("base64", "none"):
            raise HostStartupError(
                f'host.json: extensions.queues.messageEncoding must be "base64" or "none", not {encoding!r}'
            )
        return cls(
            batch_size=batch_size,
            new_batch_threshold=threshold,
            max_polling_interval=interval,
            visibility_timeout=visibility,
            max_dequeue_count=max_dequeue,
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostConfig:
    """What the local host reads from host.json."""

    route_prefix: str = "api"
    queues: QueuesOptions = field(default_factory=QueuesOptions)
    function_timeout: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostConfig:
        if not isinstance(data, Mapping):
            raise HostStartupError("host.json must contain a JSON object")
        version = _get(data, "version")
        if version is not None and str(version) != "2.0":
            raise HostStartupError(f'host.json: version must be "2.0", not {version!r}')
        http = _section(data, "extensions", "http")
        prefix = _get(http, "routePrefix")
        route_prefix = "api" if prefix is None else str(prefix).strip("/")
        timeout_raw = _get(data, "functionTimeout")
        function_timeout = (
            None if timeout_raw in (None, -1, "-1") else parse_timespan(timeout_raw, "host.json: functionTimeout")
        )
        return cls(
            route_prefix=route_prefix,
            queues=QueuesOptions.from_section(_section(data, "extensions", "queues")),
            function_timeout=function_timeout,
            raw=dict(data),
        )

    @classmethod
    def load(cls, path: Path) -> HostConfig:
        """Read host.json; a missing file means all defaults (as Core Tools warns and carries on)."""
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError as exc:
            raise HostStartupError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)
