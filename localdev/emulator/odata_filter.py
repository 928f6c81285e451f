"""The `$filter` grammar of the Activity Log list API (`eventtypes/management/values`).

The service documents a very restricted grammar: a start time is required, and the allowed
patterns are clauses joined by `and`::

    eventTimestamp ge '<start>' [and eventTimestamp le '<end>']
        [and eventChannels eq 'Admin, Operation'] [and levels eq 'Critical,Error,...']
        [and (resourceGroupName | resourceUri | resourceProvider | correlationId) eq '<value>']

"No other syntax is allowed": no `or`, `not`, parentheses, functions, other operators or other
fields (in particular no filter on `caller` or `status`). The end time defaults to now. The
start time may not be older than the 90-day retention. As the service does, timestamps may be
given without quotes and as a date alone (`eventTimestamp ge 2024-05-01`, midnight UTC).
Everything else is answered with 400 `BadRequest` and a message that says what is wrong.

Field names and the keywords `and`, `eq`, `ge`, `le` are matched without case, as the service does.
String values compare without case (resource group names, resource ids and providers are
case-insensitive in ARM).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .timefmt import TICKS_PER_SECOND, format_ticks, parse_timestamp

RETENTION_DAYS = 90
RETENTION_TICKS = RETENTION_DAYS * 86_400 * TICKS_PER_SECOND
EXAMPLE = "eventTimestamp ge '2014-07-16T04:36:37.6407898Z' and eventTimestamp le '2014-07-20T04:36:37.6407898Z'"

LEVELS = ("Critical", "Error", "Warning", "Informational", "Verbose")
CHANNELS = ("Admin", "Operation", "Debug", "Analytics")
# clause name (lower case) -> canonical name, for the clauses that take a list
LIST_FIELDS = {"eventchannels": "eventChannels", "levels": "levels"}
# clause name (lower case) -> (canonical name, the event field it compares with), for the clauses that scope
# the events (resourceProviderName is a {value, localizedValue} object)
SCOPE_FIELDS = {
    "resourcegroupname": ("resourceGroupName", "resourceGroupName"),
    "resourceuri": ("resourceUri", "resourceId"),
    "resourceprovider": ("resourceProvider", "resourceProviderName"),
    "correlationid": ("correlationId", "correlationId"),
}
SUPPORTED_FIELDS = ("eventTimestamp", *LIST_FIELDS.values(), *(name for name, _ in SCOPE_FIELDS.values()))
_OPERATORS = {"eq", "ne", "gt", "ge", "lt", "le", "has", "in", "contains", "startswith", "endswith"}


class FilterError(ValueError):
    """A `$filter` the service would refuse: 400 with this code and message."""

    def __init__(self, message: str, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ActivityLogFilter:
    """A parsed, validated `$filter`."""

    start: int  # ticks, inclusive
    end: int | None  # ticks, inclusive; None means "now"
    channels: frozenset[str] | None = None  # lower case
    levels: frozenset[str] | None = None  # lower case
    scope: tuple[str, str] | None = None  # (the event field, its value in lower case)

    def matches(self, event: dict[str, Any]) -> bool:
        """The non-time clauses (the time range is applied by the scan itself)."""
        if self.channels is not None:
            channels = {c.strip().lower() for c in str(event.get("channels") or "").split(",")}
            if not channels & self.channels:
                return False
        if self.levels is not None and str(event.get("level") or "").lower() not in self.levels:
            return False
        if self.scope is not None:
            value = event.get(self.scope[0]) or ""
            value = value.get("value") if isinstance(value, dict) else value
            return str(value or "").lower() == self.scope[1]
        return True

    @property
    def has_clauses(self) -> bool:
        return any(clause is not None for clause in (self.channels, self.levels, self.scope))


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<word>[A-Za-z_$][A-Za-z0-9_./$-]*)
      | (?P<punct>[(),])
      | (?P<other>[^\s'(),]+)
      | (?P<unterminated>'.*)
    )""",
    re.VERBOSE | re.DOTALL,
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) of each token: every character but white space belongs to one."""
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = str(match.lastgroup)
        if kind == "unterminated":
            raise FilterError(
                f"The $filter is malformed: the string starting at position {match.start(kind)} "
                "is not terminated with a single quote."
            )
        tokens.append((kind, match.group(kind), match.start(kind)))
    return tokens


def parse_filter(text: str | None, now: int, *, check_retention: bool = True) -> ActivityLogFilter:
    """Parse and validate a `$filter` as of `now` (ticks). Raises FilterError."""
    if text is None or not text.strip():
        raise FilterError(
            "The $filter query parameter is required and must contain at least the start time, "
            f"for example $filter={EXAMPLE}."
        )
    tokens = _tokenize(text)
    clauses: list[tuple[str, str, tuple[str, str, int]]] = []
    index = 0
    while True:
        if index >= len(tokens):
            raise FilterError("The $filter is malformed: it ends where a clause was expected.")
        kind, head, position = tokens[index]
        if (kind, head) == ("punct", "("):
            raise FilterError("The $filter does not support parentheses: join the clauses with 'and' only.")
        if kind == "word" and head.lower() == "not":
            raise FilterError("The $filter does not support the 'not' operator: join the clauses with 'and' only.")
        if kind != "word":
            raise FilterError(f"The $filter is malformed near position {position}: expected a field name.")
        if index + 1 < len(tokens) and tokens[index + 1][:2] == ("punct", "("):
            raise FilterError(f"The $filter does not support functions such as '{head}(...)'.")
        if index + 2 >= len(tokens):
            raise FilterError(
                f"The $filter clause starting with '{head}' is incomplete: expected <field> <operator> '<value>'."
            )
        (op_kind, operator, op_position), literal = tokens[index + 1], tokens[index + 2]
        if op_kind != "word" or operator.lower() not in _OPERATORS:
            raise FilterError(f"The $filter is malformed near position {op_position}: '{operator}' is not an operator.")
        clauses.append((head, operator, literal))
        index += 3
        if index == len(tokens):
            break
        kind, joiner, position = tokens[index]
        if kind == "word" and joiner.lower() == "and":
            index += 1
            continue
        if kind == "word" and joiner.lower() == "or":
            raise FilterError("The $filter does not support the 'or' operator: join the clauses with 'and' only.")
        raise FilterError(f"The $filter is malformed near position {position}: expected 'and'.")

    times: dict[str, int] = {}
    lists: dict[str, frozenset[str]] = {}
    values: dict[str, str] = {}
    seen: set[str] = set()
    for field, operator, (raw_kind, raw, _) in clauses:
        lowered, op = field.lower(), operator.lower()
        if lowered == "eventtimestamp":
            if op not in ("ge", "le"):
                raise FilterError(
                    f"The operator '{operator}' is not supported for eventTimestamp: use 'ge' for the "
                    "start time and 'le' for the end time."
                )
            clause_key = f"eventTimestamp {op}"
        elif lowered in SCOPE_FIELDS or lowered in LIST_FIELDS:
            if op != "eq":
                canonical = SCOPE_FIELDS[lowered][0] if lowered in SCOPE_FIELDS else LIST_FIELDS[lowered]
                raise FilterError(f"The operator '{operator}' is not supported for {canonical}: only 'eq' is.")
            clause_key = lowered
        else:
            raise FilterError(
                f"The $filter field '{field}' is not supported. Supported fields are: {', '.join(SUPPORTED_FIELDS)}."
            )
        if clause_key in seen:
            raise FilterError(f"The $filter clause '{field} {operator}' may appear only once.")
        seen.add(clause_key)
        if lowered == "eventtimestamp" and raw_kind == "other":
            value = raw  # ARM also takes the time unquoted: eventTimestamp ge 2024-05-01T10:00:00Z
        elif raw_kind != "string":
            raise FilterError(
                f"The value of '{field}' must be a string in single quotes, for example "
                f"{field} {operator} '...'; got {raw}."
            )
        else:
            value = raw[1:-1].replace("''", "'")
        if lowered == "eventtimestamp":
            try:
                times[op] = parse_timestamp(value)
            except ValueError:
                raise FilterError(
                    f"The value '{value}' of eventTimestamp is not a valid date and time. Use ISO 8601, "
                    "for example '2014-07-16T04:36:37.6407898Z'."
                ) from None
        elif lowered in LIST_FIELDS:
            allowed = CHANNELS if lowered == "eventchannels" else LEVELS
            parts = frozenset(p.strip().lower() for p in value.split(",") if p.strip())
            if not parts or not parts <= {a.lower() for a in allowed}:
                raise FilterError(
                    f"The value '{value}' of {LIST_FIELDS[lowered]} is invalid: give a comma-separated list of "
                    f"{', '.join(allowed)}."
                )
            lists[lowered] = parts
        else:
            if not value.strip():
                raise FilterError(f"The value of {SCOPE_FIELDS[lowered][0]} must not be empty.")
            values[lowered] = value.lower()

    if len(values) > 1:
        names = ", ".join(SCOPE_FIELDS[name][0] for name in values)
        raise FilterError(
            "The $filter may restrict the events to only one of resourceGroupName, resourceUri, "
            f"resourceProvider or correlationId; it has {names}."
        )
    start, end = times.get("ge"), times.get("le")
    if start is None:
        raise FilterError(
            "The $filter must contain the start time of the range, eventTimestamp ge '<start>', "
            f"for example $filter={EXAMPLE}."
        )
    if end is not None and start > end:
        raise FilterError(
            f"The start time '{format_ticks(start)}' of the $filter is later than its end time '{format_ticks(end)}'."
        )
    if check_retention and start < now - RETENTION_TICKS:
        raise FilterError(
            f"The start time '{format_ticks(start)}' of the $filter is more than {RETENTION_DAYS} days in the past: "
            f"the Activity Log keeps events for {RETENTION_DAYS} days, so the earliest start time now is "
            f"'{format_ticks(now - RETENTION_TICKS)}'."
        )
    return ActivityLogFilter(
        start=start,
        end=end,
        channels=lists.get("eventchannels"),
        levels=lists.get("levels"),
        scope=next(((SCOPE_FIELDS[name][1], value) for name, value in values.items()), None),
    )
