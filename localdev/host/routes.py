"""HTTP route templates as the Functions host (ASP.NET Core routing) reads them.

Supported: literal segments (matched case-insensitively), parameters `{name}`, optional
parameters `{name?}`, defaults `{name=value}`, catch-all `{*name}`, segments mixing literals and
parameters (`{file}.{ext}`), and the common inline constraints: `int`, `long`, `bool`, `guid`,
`alpha`, `decimal`, `double`, `float`, `datetime`, `minlength(n)`, `maxlength(n)`, `length(n)`,
`length(a,b)`, `min(n)`, `max(n)`, `range(a,b)`, `regex(expr)`. Several constraints may be chained
(`{id:int:min(1)}`). When more than one route matches, literal segments win over parameters,
constrained parameters over unconstrained ones, and catch-alls lose, as in ASP.NET Core.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote

from localdev.host.errors import HostStartupError


class RouteError(HostStartupError):
    """An invalid route template."""


def _is_int(value: str, bits: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", value):
        return False
    number = int(value)
    return -(2 ** (bits - 1)) <= number < 2 ** (bits - 1)


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_decimal(value: str) -> bool:
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _number(value: str) -> int | None:
    return int(value) if _is_int(value, 64) else None


Check = Callable[[str], bool]


def _constraint(spec: str, template: str) -> Check:
    name, _, rest = spec.partition("(")
    name = name.strip().lower()
    args_text = rest[:-1] if rest.endswith(")") else None
    if rest and args_text is None:
        raise RouteError(f"route {template!r}: constraint {spec!r} is missing ')'")

    def ints() -> list[int]:
        if args_text is None:
            raise RouteError(f"route {template!r}: constraint {name!r} needs arguments")
        try:
            return [int(a) for a in args_text.split(",")]
        except ValueError:
            raise RouteError(f"route {template!r}: bad arguments in constraint {spec!r}") from None

    simple: dict[str, Check] = {
        "int": lambda v: _is_int(v, 32),
        "long": lambda v: _is_int(v, 64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": _is_guid,
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "decimal": _is_decimal,
        "double": _is_float,
        "float": _is_float,
        "datetime": _is_datetime,
    }
    if name in simple:
        return simple[name]
    if name == "minlength":
        (n,) = ints()
        return lambda v: len(v) >= n
    if name == "maxlength":
        (n,) = ints()
        return lambda v: len(v) <= n
    if name == "length":
        bounds = ints()
        if len(bounds) == 1:
            return lambda v: len(v) == bounds[0]
        lo, hi = bounds
        return lambda v: lo <= len(v) <= hi
    if name in ("min", "max", "range"):
        bounds = ints()

        def in_range(v: str) -> bool:
            number = _number(v)
            if number is None:
                return False
            if name == "min":
                return number >= bounds[0]
            if name == "max":
                return number <= bounds[0]
            return bounds[0] <= number <= bounds[1]

        return in_range
    if name == "regex":
        if args_text is None:
            raise RouteError(f"route {template!r}: constraint 'regex' needs a pattern")
        try:
            pattern = re.compile(args_text, re.IGNORECASE)
        except re.error as exc:
            raise RouteError(f"route {template!r}: bad regex constraint: {exc}") from None
        return lambda v: pattern.search(v) is not None
    raise RouteError(f"route {template!r}: the local host does not know the route constraint {name!r}")


def _split_constraints(text: str) -> list[str]:
    """Split `int:min(1):regex(a:b)` on colons outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == ":" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class RouteParameter:
    name: str
    group: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: tuple[Check, ...] = field(default=(), compare=False)


_SEGMENT_RANK_LITERAL, _RANK_COMPLEX, _RANK_CONSTRAINED, _RANK_PARAM, _RANK_OPTIONAL, _RANK_CATCH_ALL = range(6)


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template, matched against the part of the path after the route prefix."""

    template: str
    regex: re.Pattern[str]
    parameters: tuple[RouteParameter, ...]
    precedence: tuple[int, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        text = template.strip().strip("/")
        segments = text.split("/") if text else []
        pieces: list[str] = []
        params: list[RouteParameter] = []
        precedence: list[int] = []
        names: set[str] = set()
        for index, segment in enumerate(segments):
            if not segment:
                raise RouteError(f"route {template!r}: empty segment")
            tokens = re.split(r"(\{[^{}]*\})", segment)
            regex_parts: list[str] = []
            seg_params: list[RouteParameter] = []
            for token in tokens:
                if not token:
                    continue
                if token.startswith("{") and token.endswith("}"):
                    param = cls._parameter(token[1:-1], len(params) + len(seg_params), template)
                    if param.name.lower() in names:
                        raise RouteError(f"route {template!r}: parameter {param.name!r} appears twice")
                    names.add(param.name.lower())
                    seg_params.append(param)
                    regex_parts.append(
                        f"(?P<{param.group}>.*)" if param.catch_all else f"(?P<{param.group}>[^/]+?)"
                    )
                else:
                    if "{" in token or "}" in token:
                        raise RouteError(f"route {template!r}: unbalanced braces in {segment!r}")
                    regex_parts.append(re.escape(token))
            body = "".join(regex_parts)
            sep = "/" if index else ""
            only_param = len(seg_params) == 1 and len([t for t in tokens if t]) == 1
            if only_param and (seg_params[0].optional or seg_params[0].catch_all):
                pieces.append(f"(?:{sep}{body})?")
            else:
                pieces.append(sep + body)
            params.extend(seg_params)
            if not seg_params:
                precedence.append(_SEGMENT_RANK_LITERAL)
            elif not only_param:
                precedence.append(_RANK_COMPLEX)
            else:
                p = seg_params[0]
                precedence.append(
                    _RANK_CATCH_ALL if p.catch_all
                    else _RANK_OPTIONAL if p.optional
                    else _RANK_CONSTRAINED if p.checks
                    else _RANK_PARAM
                )
        regex = re.compile("^" + "".join(pieces) + "/?$", re.IGNORECASE | re.DOTALL)
        return cls(template, regex, tuple(params), tuple(precedence))

    @staticmethod
    def _parameter(inner: str, index: int, template: str) -> RouteParameter:
        catch_all = inner.startswith("*")
        inner = inner.lstrip("*")
        optional = False
        default = None
        if inner.endswith("?"):
            optional = True
            inner = inner[:-1]
        head, eq, default_text = inner.partition("=")
        if eq:
            default = default_text
            optional = True
        name, *constraints = _split_constraints(head)
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise RouteError(f"route {template!r}: bad parameter name {name!r}")
        checks = tuple(_constraint(c, template) for c in constraints if c)
        return RouteParameter(name, f"p{index}", optional, catch_all, default, checks)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for `path` (relative to the prefix, no leading slash), or None."""
        m = self.regex.match(unquote(path.strip("/")) if path else "")
        if m is None:
            return None
        values: dict[str, str] = {}
        for param in self.parameters:
            value = m.group(param.group)
            if value is None or value == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values
