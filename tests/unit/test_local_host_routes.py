"""HTTP route templates, matched as the Functions host (ASP.NET Core routing) matches them."""

from __future__ import annotations

import pytest

from localdev.host.routes import RouteError, RouteTemplate

pytestmark = pytest.mark.unit


def match(template: str, path: str) -> dict[str, str] | None:
    return RouteTemplate.parse(template).match(path)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items", "items", {}),
        ("items", "ITEMS/", {}),  # literals are case-insensitive; a trailing slash is fine
        ("items", "items/1", None),
        ("items/{id}", "items/abc", {"id": "abc"}),
        ("items/{id}", "items", None),
        ("items/{id}", "items/a%20b", {"id": "a b"}),  # values are percent-decoded
        ("items/{id?}", "items", {}),
        ("items/{id?}", "items/7", {"id": "7"}),
        ("items/{id=latest}", "items", {"id": "latest"}),
        ("items/{id=latest}", "items/9", {"id": "9"}),
        ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files/{*path}", "files", {}),
        ("files/{name}.{ext}", "files/report.pdf", {"name": "report", "ext": "pdf"}),
        ("{a}/{b}", "x/y", {"a": "x", "b": "y"}),
        ("", "", {}),
        ("{id?}", "", {}),
        ("connectors/azure", "connectors/azure", {}),
    ],
)
def test_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert match(template, path) == expected


@pytest.mark.parametrize(
    ("template", "good", "bad"),
    [
        ("{v:int}", "-42", "4.2"),
        ("{v:int}", "2147483647", "2147483648"),
        ("{v:long}", "2147483648", "x"),
        ("{v:bool}", "True", "yes"),
        ("{v:guid}", "0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b"),
        ("{v:alpha}", "abcXYZ", "abc1"),
        ("{v:double}", "1.5e3", "one"),
        ("{v:decimal}", "1.25", "1,25"),
        ("{v:datetime}", "2026-01-01T10:00:00", "yesterday"),
        ("{v:minlength(3)}", "abc", "ab"),
        ("{v:maxlength(3)}", "abc", "abcd"),
        ("{v:length(2)}", "ab", "abc"),
        ("{v:length(2,3)}", "abc", "a"),
        ("{v:min(10)}", "10", "9"),
        ("{v:max(10)}", "10", "11"),
        ("{v:range(1,5)}", "5", "6"),
        ("{v:int:min(1)}", "1", "0"),
        ("{v:regex(^[a-z]+\\d$)}", "ab1", "abc"),
    ],
)
def test_constraints(template: str, good: str, bad: str) -> None:
    assert match(template, good) == {"v": good}
    assert match(template, bad) is None


def test_regex_constraint_may_contain_colons() -> None:
    assert match("t/{v:regex(^\\d+:\\d+$)}", "t/10:30") == {"v": "10:30"}


def test_precedence_literals_then_constraints_then_parameters_then_catch_all() -> None:
    templates = ["{*rest}", "items/{id}", "items/{id:int}", "items/latest", "items/{id?}"]
    ordered = sorted((RouteTemplate.parse(t) for t in templates), key=lambda r: r.precedence)
    matching = [r.template for r in ordered if r.match("items/5") is not None]
    assert matching == ["items/{id:int}", "items/{id}", "items/{id?}", "{*rest}"]
    assert next(r.template for r in ordered if r.match("items/latest") is not None) == "items/latest"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("items/{id:unknown}", "does not know the route constraint"),
        ("items/{id}/{id}", "appears twice"),
        ("items/{1id}", "bad parameter name"),
        ("items//x", "empty segment"),
        ("items/{id", "unbalanced braces"),
        ("items/{v:min(x)}", "bad arguments"),
        ("items/{v:regex([)}", "bad regex"),
    ],
)
def test_invalid_templates(template: str, message: str) -> None:
    with pytest.raises(RouteError, match=message):
        RouteTemplate.parse(template)
