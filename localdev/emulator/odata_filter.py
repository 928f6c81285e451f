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
# clause name (lower case) -> canonical name
SCOPE_FIELDS = {
    "resourcegroupname": "resourceGroupName",
    "resourceuri": "resourceUri",
    "resourceprovider": "resourceProvider",
    "correlationid": "correlationId",
}
SUPPORTED_FIELDS = ("eventTimestamp", "eventChannels", "levels", *SCOPE_FIELDS.values())
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
    resource_group: str | None = None
    resource_uri: str | None = None
    resource_provider: str | None = None
    correlation_id: str | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        """The non-time clauses (the time range is applied by the scan itself)."""
        if self.channels is not None:
            channels = {c.strip().lower() for c in str(event.get("channels") or "").split(",")}
            if not channels & self.channels:
                return False
        if self.levels is not None and str(event.get("level") or "").lower() not in self.levels:
            return False
        if self.resource_group is not None and str(event.get("resourceGroupName") or "").lower() != self.resource_group:
            return False
        if self.resource_uri is not None and str(event.get("resourceId") or "").lower() != self.resource_uri:
            return False
        if self.resource_provider is not None:
            provider = event.get("resourceProviderName") or {}
            value = provider.get("value") if isinstance(provider, dict) else provider
            if str(value or "").lower() != self.resource_provider:
                return False
        return self.correlation_id is None or str(event.get("correlationId") or "").lower() == self.correlation_id

    @property
    def has_clauses(self) -> bool:
        return any(
            v is not None
            for v in (
                self.channels,
                self.levels,
                self.resource_group,
                self.resource_uri,
                self.resource_provider,
                self.correlation_id,
            )
        )


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "punct", "other"
    text: str
    position: int


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


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            if text[position:].strip() == "":
                break
            raise FilterError(f"The $filter is malformed near position {position}: {text[position : position + 20]!r}.")
        if match.group("unterminated") is not None:
            raise FilterError(
                f"The $filter is malformed: the string starting at position {match.start('unterminated')} "
                "is not terminated with a single quote."
            )
        for kind in ("string", "word", "punct", "other"):
            value = match.group(kind)
            if value is not None:
                tokens.append(_Token(kind, value, match.start(kind)))
                break
        position = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    return token.text[1:-1].replace("''", "'")


def parse_filter(text: str | None, now: int, *, check_retention: bool = True) -> ActivityLogFilter:
    """Parse and validate a `$filter` as of `now` (ticks). Raises FilterError."""
    if text is None or not text.strip():
        raise FilterError(
            "The $filter query parameter is required and must contain at least the start time, "
            f"for example $filter={EXAMPLE}."
        )
    tokens = _tokenize(text)
    clauses: list[tuple[_Token, _Token, _Token]] = []
    index = 0
    while True:
        if index >= len(tokens):
            raise FilterError("The $filter is malformed: it ends where a clause was expected.")
        head = tokens[index]
        if head.kind == "punct" and head.text == "(":
            raise FilterError("The $filter does not support parentheses: join the clauses with 'and' only.")
        if head.kind == "word" and head.text.lower() == "not":
            raise FilterError("The $filter does not support the 'not' operator: join the clauses with 'and' only.")
        if head.kind != "word":
            raise FilterError(f"The $filter is malformed near position {head.position}: expected a field name.")
        if index + 1 < len(tokens) and tokens[index + 1].kind == "punct" and tokens[index + 1].text == "(":
            raise FilterError(f"The $filter does not support functions such as '{head.text}(...)'.")
        if index + 2 >= len(tokens):
            raise FilterError(
                f"The $filter clause starting with '{head.text}' is incomplete: expected <field> <operator> '<value>'."
            )
        op_token, value_token = tokens[index + 1], tokens[index + 2]
        if op_token.kind != "word" or op_token.text.lower() not in _OPERATORS:
            raise FilterError(
                f"The $filter is malformed near position {op_token.position}: '{op_token.text}' is not an operator."
            )
        clauses.append((head, op_token, value_token))
        index += 3
        if index == len(tokens):
            break
        joiner = tokens[index]
        if joiner.kind == "word" and joiner.text.lower() == "and":
            index += 1
            continue
        if joiner.kind == "word" and joiner.text.lower() == "or":
            raise FilterError("The $filter does not support the 'or' operator: join the clauses with 'and' only.")
        raise FilterError(f"The $filter is malformed near position {joiner.position}: expected 'and'.")

    start: int | None = None
    end: int | None = None
    seen: set[str] = set()
    values: dict[str, str] = {}
    channels: frozenset[str] | None = None
    levels: frozenset[str] | None = None
    for field_token, operator_token, literal in clauses:
        field = field_token.text
        lowered = field.lower()
        operator = operator_token.text.lower()
        if lowered == "eventtimestamp":
            if operator not in ("ge", "le"):
                raise FilterError(
                    f"The operator '{operator_token.text}' is not supported for eventTimestamp: use 'ge' for the "
                    "start time and 'le' for the end time."
                )
            clause_key = f"eventTimestamp {operator}"
        elif lowered in SCOPE_FIELDS or lowered in ("eventchannels", "levels"):
            if operator != "eq":
                canonical = SCOPE_FIELDS.get(lowered, "eventChannels" if lowered == "eventchannels" else "levels")
                raise FilterError(
                    f"The operator '{operator_token.text}' is not supported for {canonical}: only 'eq' is."
                )
            clause_key = lowered
        else:
            raise FilterError(
                f"The $filter field '{field}' is not supported. Supported fields are: {', '.join(SUPPORTED_FIELDS)}."
            )
        if clause_key in seen:
            raise FilterError(f"The $filter clause '{field} {operator_token.text}' may appear only once.")
        seen.add(clause_key)
        if lowered == "eventtimestamp" and literal.kind == "other":
            value = literal.text  # ARM also takes the time unquoted: eventTimestamp ge 2024-05-01T10:00:00Z
        elif literal.kind != "string":
            raise FilterError(
                f"The value of '{field}' must be a string in single quotes, for example "
                f"{field} {operator_token.text} '...'; got {literal.text}."
            )
        else:
            value = _unquote(literal)
        if lowered == "eventtimestamp":
            try:
                ticks = parse_timestamp(value)
            except ValueError:
                raise FilterError(
                    f"The value '{value}' of eventTimestamp is not a valid date and time. Use ISO 8601, "
                    "for example '2014-07-16T04:36:37.6407898Z'."
                ) from None
            if operator == "ge":
                start = ticks
            else:
                end = ticks
        elif lowered == "eventchannels":
            parts = [p.strip() for p in value.split(",") if p.strip()]
            unknown = [p for p in parts if p.lower() not in {c.lower() for c in CHANNELS}]
            if not parts or unknown:
                raise FilterError(
                    f"The value '{value}' of eventChannels is invalid: give a comma-separated list of "
                    f"{', '.join(CHANNELS)}."
                )
            channels = frozenset(p.lower() for p in parts)
        elif lowered == "levels":
            parts = [p.strip() for p in value.split(",") if p.strip()]
            unknown = [p for p in parts if p.lower() not in {level.lower() for level in LEVELS}]
            if not parts or unknown:
                raise FilterError(
                    f"The value '{value}' of levels is invalid: give a comma-separated list of {', '.join(LEVELS)}."
                )
            levels = frozenset(p.lower() for p in parts)
        else:
            if not value.strip():
                raise FilterError(f"The value of {SCOPE_FIELDS[lowered]} must not be empty.")
            values[lowered] = value.lower()

    if len(values) > 1:
        names = ", ".join(SCOPE_FIELDS[name] for name in values)
        raise FilterError(
            "The $filter may restrict the events to only one of resourceGroupName, resourceUri, "
            f"resourceProvider or correlationId; it has {names}."
        )
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
        channels=channels,
        levels=levels,
        resource_group=values.get("resourcegroupname"),
        resource_uri=values.get("resourceuri"),
        resource_provider=values.get("resourceprovider"),
        correlation_id=values.get("correlationid"),
    )
