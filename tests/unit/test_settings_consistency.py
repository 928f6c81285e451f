"""Every app setting the code reads is listed locally, documented, and set in Azure (and no more).

The names come from `core.settings.setting_names()`, so a new setting fails here until
`local.settings.sample.json`, the README's settings table and `infra/` all carry it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from core.settings import Settings, load_settings, setting_names

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "local.settings.sample.json"
README = ROOT / "README.md"
INFRA = ROOT / "infra"

# Read by the code but never set in Azure: shared keys are disabled (identity-based
# AzureWebJobsStorage__* instead) and the managed identity replaces any client secret.
NOT_IN_AZURE = frozenset({"AzureWebJobsStorage", "AZURE_CLIENT_SECRET"})

# Settings of the platform (Functions host, Python worker, App Service, Application Insights) that
# the deployment or the local sample may carry although the code does not read them.
PLATFORM_SETTINGS = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "AzureWebJobsFeatureFlags",
        "AzureWebJobsSecretStorageType",
        "AzureWebJobsDisableHomepage",
        "AzureWebJobsScriptRoot",
    }
)
PLATFORM_PREFIXES = ("APPLICATIONINSIGHTS_", "WEBSITE_", "PYTHON_", "AzureFunctionsJobHost__")

NAMES = setting_names()

# An object key at the start of a line: `NAME: value` or `'NAME': value`.
_BICEP_KEY = re.compile(r"^[ \t]*'?(?P<key>[A-Za-z_][A-Za-z0-9_]*)'?[ \t]*:[ \t]*(?P<value>.*?)[ \t]*$", re.MULTILINE)
# The array form of app settings: `{ name: 'NAME', value: ... }`.
_BICEP_NAME_VALUE = re.compile(r"\bname\s*:\s*'(?P<key>[A-Za-z_][A-Za-z0-9_]*)'")
# What an app setting name looks like, to tell app settings from other object keys.
_LOOKS_LIKE_SETTING = re.compile(r"^(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|AzureWebJobs\w*|AzureFunctions\w*)$")
_BICEP_PARAM = re.compile(r"^[ \t]*param[ \t]+(?P<name>\w+)[ \t]+\w+[ \t]*=[ \t]*(?P<default>.+?)[ \t]*$", re.MULTILINE)


def _strip_bicep_comments(text: str) -> str:
    """Drop // and /* */ comments, leaving string literals (which may hold '//') alone."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == "'":
                in_string = False
            i += 1
        elif ch == "'":
            in_string = True
            out.append(ch)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end == -1 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@cache
def _bicep_files() -> tuple[Path, ...]:
    files = tuple(sorted(INFRA.rglob("*.bicep")))
    assert files, f"No Bicep files under {INFRA.relative_to(ROOT)}/"
    return files


@cache
def _bicep_keys() -> dict[str, tuple[str, str]]:
    """Every key set in the Bicep files: name -> (file, value expression)."""
    keys: dict[str, tuple[str, str]] = {}
    for path in _bicep_files():
        text = _strip_bicep_comments(path.read_text(encoding="utf-8"))
        rel = str(path.relative_to(ROOT))
        for match in _BICEP_KEY.finditer(text):
            keys.setdefault(match["key"], (rel, match["value"]))
        for match in _BICEP_NAME_VALUE.finditer(text):
            keys.setdefault(match["key"], (rel, ""))
    return keys


@cache
def _bicep_params(rel: str) -> dict[str, str]:
    """Parameter name -> default expression, in one Bicep file (path relative to the repo)."""
    text = _strip_bicep_comments((ROOT / rel).read_text(encoding="utf-8"))
    return {match["name"]: match["default"] for match in _BICEP_PARAM.finditer(text)}


@cache
def _sample_values() -> dict[str, str]:
    assert SAMPLE.exists(), f"{SAMPLE.name} does not exist"
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    assert data.get("IsEncrypted") is False, f"{SAMPLE.name}: IsEncrypted must be false"
    values = data.get("Values")
    assert isinstance(values, dict), f"{SAMPLE.name}: no Values object"
    return values


@cache
def _readme_table_names() -> frozenset[str]:
    """Names in the first cell of any markdown table row: "| `NAME` |" (or "| `A`, `B` |")."""
    assert README.exists(), "README.md does not exist: its settings table must document every app setting"
    names: set[str] = set()
    for line in README.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            continue
        first_cell = stripped[1:].split("|", 1)[0]
        names.update(re.findall(r"`([^`]+)`", first_cell))
    return frozenset(names)


def _is_platform(name: str) -> bool:
    return name in PLATFORM_SETTINGS or name.startswith(PLATFORM_PREFIXES)


def _bicep_literal(expression: str) -> str | None:
    """The value of a Bicep string, integer or boolean literal, else None."""
    if m := re.fullmatch(r"'((?:[^'\\]|\\.)*)'", expression):
        return m[1]
    if re.fullmatch(r"-?\d+|true|false", expression):
        return expression
    return None


def test_names_come_from_the_code() -> None:
    assert NAMES, "core.settings.setting_names() returned nothing"
    assert len(NAMES) == len(set(NAMES)), f"duplicate app setting names: {NAMES}"


@pytest.mark.parametrize("name", NAMES)
def test_setting_is_in_local_settings_sample(name: str) -> None:
    assert name in _sample_values(), f"{name} is missing from {SAMPLE.name} (Values)"


@pytest.mark.parametrize("name", NAMES)
def test_setting_is_in_readme_settings_table(name: str) -> None:
    assert name in _readme_table_names(), (
        f"{name} is missing from the settings table in {README.name} (a row starting with | `{name}` |)"
    )


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_IN_AZURE])
def test_setting_is_set_in_infra(name: str) -> None:
    assert name in _bicep_keys(), f"{name} is not set as an app setting in infra/*.bicep"


@pytest.mark.parametrize("name", sorted(NOT_IN_AZURE))
def test_setting_is_not_set_in_azure(name: str) -> None:
    assert name in NAMES, f"{name} is no longer read by the code: update NOT_IN_AZURE in this test"
    file = _bicep_keys().get(name, ("", ""))[0]
    assert not file, f"{name} must not be set in Azure (managed identity, no secrets), but {file} sets it"


def test_infra_sets_no_unknown_setting() -> None:
    known = set(NAMES)
    unknown = sorted(
        f"{key} (in {file})"
        for key, (file, _) in _bicep_keys().items()
        if _LOOKS_LIKE_SETTING.match(key) and key not in known and not _is_platform(key)
    )
    assert not unknown, f"infra sets app settings the code does not read: {', '.join(unknown)}"


def test_sample_has_no_unknown_setting() -> None:
    known = set(NAMES)
    unknown = sorted(key for key in _sample_values() if key not in known and not _is_platform(key))
    assert not unknown, f"{SAMPLE.name} lists settings the code does not read: {', '.join(unknown)}"


def test_sample_is_a_valid_configuration() -> None:
    values = {k: v for k, v in _sample_values().items() if isinstance(v, str)}
    load_settings(values)  # raises SettingsError naming the bad setting


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_IN_AZURE])
def test_infra_default_matches_code_default(name: str) -> None:
    """Where infra passes a Bicep parameter with a literal default, that default is the code's."""
    default = Settings.model_fields[_field_for(name)].default
    file, expression = _bicep_keys().get(name, ("", ""))
    match = re.fullmatch(r"(?:string\((\w+)\)|(\w+))", expression)
    if default is None or match is None:
        return
    param = match[1] or match[2]
    literal = _bicep_literal(_bicep_params(file).get(param, ""))
    if literal is None:
        return
    assert literal == str(default), (
        f"{name}: infra default {literal!r} (parameter {param} in {file}) differs from the code's {default!r}"
    )


def _field_for(name: str) -> str:
    for field_name, field in Settings.model_fields.items():
        if field.alias == name:
            return field_name
    raise AssertionError(f"{name} is not a field alias in core.settings.Settings")
