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


def _lower_keys(value: Any) -> Any:
    """host.json with every key lower-cased: the Functions host matches keys without case."""
    return {str(k).lower(): _lower_keys(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`extensions.<name>`, {} when absent."""
    extensions = data.get("extensions") or {}
    section = extensions.get(name) if isinstance(extensions, Mapping) else None
    if section is not None and not isinstance(section, Mapping):
        raise HostStartupError(f"host.json: extensions.{name} must be an object")
    return section or {}


def _int(section: Mapping[str, Any], key: str, default: int) -> int:
    value = section.get(key.lower())
    if value is None:
        return default
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError
        return int(value)
    except ValueError:
        raise HostStartupError(f"host.json: extensions.queues.{key} must be an integer, not {value!r}") from None


def _timespan(section: Mapping[str, Any], key: str, default: float) -> float:
    value = section.get(key.lower())
    return default if value is None else parse_timespan(value, f"host.json: extensions.queues.{key}")


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
        """The options from a `queues` section whose keys are lower-cased."""
        batch_size = _int(section, "batchSize", 16)
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise HostStartupError(
                f"host.json: extensions.queues.batchSize must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}"
            )
        threshold = _int(section, "newBatchThreshold", batch_size // 2)
        if threshold < 0:
            raise HostStartupError("host.json: extensions.queues.newBatchThreshold must not be negative")
        interval = _timespan(section, "maxPollingInterval", 60.0)
        if interval < MIN_POLLING_INTERVAL:
            raise HostStartupError("host.json: extensions.queues.maxPollingInterval must be at least 100 ms")
        max_dequeue = _int(section, "maxDequeueCount", 5)
        if max_dequeue < 1:
            raise HostStartupError("host.json: extensions.queues.maxDequeueCount must be at least 1")
        encoding = section.get("messageencoding")
        encoding = "base64" if encoding is None else str(encoding).lower()
        if encoding not in ("base64", "none"):
            raise HostStartupError(
                f'host.json: extensions.queues.messageEncoding must be "base64" or "none", not {encoding!r}'
            )
        visibility = _timespan(section, "visibilityTimeout", 0.0)
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostConfig:
        if not isinstance(data, Mapping):
            raise HostStartupError("host.json must contain a JSON object")
        data = _lower_keys(data)
        version = data.get("version")
        if version is not None and str(version) != "2.0":
            raise HostStartupError(f'host.json: version must be "2.0", not {version!r}')
        prefix = _section(data, "http").get("routeprefix")
        timeout = data.get("functiontimeout")
        return cls(
            route_prefix="api" if prefix is None else str(prefix).strip("/"),
            queues=QueuesOptions.from_section(_section(data, "queues")),
            function_timeout=None
            if timeout in (None, -1, "-1")
            else parse_timespan(timeout, "host.json: functionTimeout"),
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
