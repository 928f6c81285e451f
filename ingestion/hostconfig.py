"""What the handlers need to know of host.json (read once): the queue's maxDequeueCount."""

from __future__ import annotations

import functools
import json
from pathlib import Path

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
DEFAULT_MAX_DEQUEUE_COUNT = 5


@functools.cache
def max_dequeue_count(path: Path = HOST_JSON) -> int:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_MAX_DEQUEUE_COUNT
    value = document.get("extensions", {}).get("queues", {}).get("maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_DEQUEUE_COUNT
