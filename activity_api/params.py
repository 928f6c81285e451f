"""Reading query-string parameters: every bad value is an InvalidInput naming its parameter."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime

from core.errors import InvalidInput
from ingestion.models import parse_timestamp

# The Functions host accepts the function key as `?code=`; it is the host's, not ours to refuse.
HOST_PARAMETERS = frozenset({"code"})
MAX_VALUE_CHARS = 512
MAX_NAME_CHARS = 40  # an unknown parameter's name is echoed in the 400 only this far
MAX_NAMES_SHOWN = 5
MAX_LIMIT = 100
DEFAULT_LIMIT = 100

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# "2026-11-26T10:00:00+01:00" sent unencoded in a URL arrives as "2026-11-26T10:00:00 01:00".
_SPACE_FOR_PLUS = re.compile(r"(\d) (\d{2}(?::?\d{2})?)$")
_DIGITS = re.compile(r"^[0-9]{1,6}$")


def reject_unknown(params: Mapping[str, str], allowed: Collection[str]) -> None:
    unknown = sorted(name for name in params if name not in allowed and name not in HOST_PARAMETERS)
    if not unknown:
        return
    by_lower = {name.lower(): name for name in allowed}
    hints = [f"{name} (did you mean {by_lower[name.lower()]}?)" for name in unknown if name.lower() in by_lower]
    message = f"unknown query parameter{'s' if len(unknown) > 1 else ''}; the parameters are {', '.join(allowed)}"
    if hints:
        message += "; " + "; ".join(hints)
    shown = [_quoted_name(name) for name in unknown[:MAX_NAMES_SHOWN]]
    if len(unknown) > MAX_NAMES_SHOWN:
        shown.append(f"and {len(unknown) - MAX_NAMES_SHOWN} more")
    raise InvalidInput(", ".join(shown), message)


def _quoted_name(name: str) -> str:
    """A caller's parameter name as shown back: control characters escaped, at most MAX_NAME_CHARS."""
    clean = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)
    return clean if len(clean) <= MAX_NAME_CHARS else clean[:MAX_NAME_CHARS] + "…"


def text(params: Mapping[str, str], name: str, *, max_chars: int = MAX_VALUE_CHARS) -> str | None:
    """A trimmed, non-empty value, or None when the parameter is absent."""
    value = params.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise InvalidInput(name, "must not be empty (leave the parameter out instead)")
    if len(value) > max_chars:
        raise InvalidInput(name, f"is longer than {max_chars} characters")
    if _CONTROL.search(value):
        raise InvalidInput(name, "must not contain control characters")
    return value


def timestamp(params: Mapping[str, str], name: str) -> datetime | None:
    value = text(params, name, max_chars=64)
    if value is None:
        return None
    parsed = parse_timestamp(_SPACE_FOR_PLUS.sub(r"\1+\2", value))
    if parsed is None:
        raise InvalidInput(name, f"{value!r} is not an ISO 8601 date and time, such as 2026-11-26T10:00:00Z")
    return parsed


def limit(params: Mapping[str, str], *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    return whole_number(params, "limit", default=default, maximum=maximum)


def whole_number(params: Mapping[str, str], name: str, *, default: int, maximum: int) -> int:
    """A whole number from 1 to `maximum`; `default` when the parameter is absent."""
    value = text(params, name, max_chars=16)
    if value is None:
        return default
    if not _DIGITS.match(value) or not 1 <= int(value) <= maximum:
        raise InvalidInput(name, f"must be a whole number from 1 to {maximum}")
    return int(value)


def route_id(route_params: Mapping[str, str], name: str = "id") -> str:
    value = text(route_params, name)
    if value is None:
        raise InvalidInput(name, "is required")
    return value
