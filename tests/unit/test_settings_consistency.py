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
# AzureWebJobsStorage__* instead), the managed identity replaces any client secret, and webhooks to
# internal addresses are for local development and tests only.
NOT_IN_AZURE = frozenset({"AzureWebJobsStorage", "AZURE_CLIENT_SECRET", "ALERT_WEBHOOK_ALLOW_PRIVATE"})

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


# ---------------------------------------------------------------------------------------------
# The deployment's inputs: infra/main.parameters.json (what azd passes), the parameters of
# infra/main.bicep (names, defaults, constraints) and azure.yaml, against each other and the code.
# ---------------------------------------------------------------------------------------------

MAIN_BICEP = "infra/main.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"
AZURE_YAML = ROOT / "azure.yaml"
FUNCIGNORE = ROOT / ".funcignore"
CUSTOM_ROLE = INFRA / "activity-log-reader.json"

# App settings whose value comes from the deployment itself (resources it creates, its tenant),
# not from a parameter: there is nothing to override.
FROM_THE_DEPLOYMENT = frozenset(
    {
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
    }
)

# Parameters that azd fills in itself, and the environment variable it uses.
AZD_PARAMETERS = {
    "environmentName": "AZURE_ENV_NAME",
    "location": "AZURE_LOCATION",
    "principalId": "AZURE_PRINCIPAL_ID",
    "principalType": "AZURE_PRINCIPAL_TYPE",
}

# `${NAME}` or `${NAME=fallback}`: azd's substitution, where the fallback applies when NAME is unset
# or empty.
_AZD_REFERENCE = re.compile(r"^\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<fallback>[^}]*))?\}$")
_VAR = re.compile(r"^[ \t]*var[ \t]+(?P<name>\w+)[ \t]*=[ \t]*(?P<expr>.+?)[ \t]*$", re.MULTILINE)


class BicepParam:
    def __init__(self, name: str, type_: str, default: str | None, decorators: dict[str, str]) -> None:
        self.name = name
        self.type = type_
        self.default = default
        self.decorators = decorators

    def allowed(self) -> list[str] | None:
        raw = self.decorators.get("allowed")
        if raw is None:
            return None
        return [m[1] if m[1] is not None else m[2] for m in re.finditer(r"'([^']*)'|(-?\d+)", raw)]

    def bound(self, decorator: str) -> int | None:
        raw = self.decorators.get(decorator)
        return None if raw is None else int(raw)


def _balanced(text: str, start: int) -> int:
    """Index just past the parenthesis closing the one at `start`, skipping string literals."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == "'":
                in_string = False
        elif ch == "'":
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise AssertionError("unbalanced parentheses in a Bicep decorator")


@cache
def _main_params() -> dict[str, BicepParam]:
    """Every parameter of main.bicep with its decorators (minLength, allowed, ...) and default."""
    text = _strip_bicep_comments((ROOT / MAIN_BICEP).read_text(encoding="utf-8"))
    params: dict[str, BicepParam] = {}
    decorators: dict[str, str] = {}
    i = 0
    while i < len(text):
        line_end = text.find("\n", i)
        line_end = len(text) if line_end == -1 else line_end
        line = text[i:line_end].strip()
        if line.startswith("@"):
            name = re.match(r"@(\w+)\(", line)
            assert name, f"unreadable decorator in {MAIN_BICEP}: {line}"
            open_at = text.index("(", i)
            close_at = _balanced(text, open_at)
            decorators[name[1]] = text[open_at + 1 : close_at - 1].strip()
            i = close_at
            continue
        if m := re.match(r"param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+))?$", line):
            params[m[1]] = BicepParam(m[1], m[2], m[3], decorators)
            decorators = {}
        elif line:
            decorators = {}
        i = line_end + 1
    assert params, f"no parameters found in {MAIN_BICEP}"
    return params


@cache
def _main_vars() -> dict[str, str]:
    text = _strip_bicep_comments((ROOT / MAIN_BICEP).read_text(encoding="utf-8"))
    return {m["name"]: m["expr"] for m in _VAR.finditer(text)}


@cache
def _parameter_file() -> dict[str, tuple[str, str | None]]:
    """main.parameters.json: parameter -> (azd variable, fallback or None)."""
    data = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))
    mapped: dict[str, tuple[str, str | None]] = {}
    for name, entry in data["parameters"].items():
        value = entry.get("value")
        assert isinstance(value, str), f"{PARAMETERS_FILE.name}: {name} must map an azd variable as a string"
        m = _AZD_REFERENCE.match(value)
        assert m, f"{PARAMETERS_FILE.name}: {name} is {value!r}, expected ${{NAME}} or ${{NAME=fallback}}"
        mapped[name] = (m["var"], m["fallback"])
    return mapped


def _param_for_setting(name: str) -> str | None:
    """The main.bicep parameter an app setting is set from (directly, through string(), or a var)."""
    file, expression = _bicep_keys().get(name, ("", ""))
    if file != MAIN_BICEP:
        return None
    m = re.fullmatch(r"(?:string\((\w+)\)|(\w+))", expression)
    if m is None:
        return None
    symbol = m[1] or m[2]
    params = _main_params()
    if symbol in params:
        return symbol
    used = [p for p in params if re.search(rf"\b{p}\b", _main_vars().get(symbol, ""))]
    return used[0] if len(used) == 1 else None


def _literal_value(param: BicepParam) -> str | None:
    return None if param.default is None else _bicep_literal(param.default)


def _minimal_settings(**values: str) -> dict[str, str]:
    return {"AzureWebJobsStorage__accountName": "account", **values}


def test_parameter_file_maps_only_parameters_of_main_bicep() -> None:
    unknown = sorted(set(_parameter_file()) - set(_main_params()))
    assert not unknown, f"{PARAMETERS_FILE.name} maps parameters main.bicep does not declare: {unknown}"


def test_parameter_file_maps_every_required_parameter() -> None:
    required = sorted(name for name, param in _main_params().items() if param.default is None)
    missing = [name for name in required if name not in _parameter_file()]
    assert not missing, f"main.bicep parameters without a default that azd cannot fill in: {missing}"


@pytest.mark.parametrize("param", sorted(AZD_PARAMETERS))
def test_azd_fills_in_its_own_parameters(param: str) -> None:
    assert param in _main_params(), f"main.bicep has no parameter {param}"
    var, _ = _parameter_file().get(param, ("", None))
    assert var == AZD_PARAMETERS[param], f"{param} must be mapped to ${{{AZD_PARAMETERS[param]}}}"


def test_principal_type_reaches_the_developer_role_assignments() -> None:
    _, fallback = _parameter_file()["principalType"]
    assert fallback == "User", "AZURE_PRINCIPAL_TYPE is unset on older azd: fall back to User"
    assert _main_params()["principalType"].allowed() == ["User", "ServicePrincipal", "Group"]
    rbac = _strip_bicep_comments((INFRA / "rbac.bicep").read_text(encoding="utf-8"))
    assert "principalType: 'User'" not in rbac, "rbac.bicep must take the developer's principal type as a parameter"
    assert re.search(
        r"userIdentityPrincipalType\s*:\s*principalType\b",
        _strip_bicep_comments((ROOT / MAIN_BICEP).read_text(encoding="utf-8")),
    ), "main.bicep must pass principalType to rbac.bicep"


@pytest.mark.parametrize("param", sorted(n for n, p in _main_params().items() if p.default is not None))
def test_unset_or_empty_variable_falls_back_to_the_bicep_default(param: str) -> None:
    """A mapped parameter with a default carries it as fallback, so no azd version sends ''."""
    if param not in _parameter_file():
        return  # not settable through azd: Bicep's default applies
    var, fallback = _parameter_file()[param]
    default = _literal_value(_main_params()[param])
    assert default is not None, (
        f"{param} is mapped from ${{{var}}} but its Bicep default is not a literal: make the default '' and "
        "compute the real one with empty() in main.bicep"
    )
    assert fallback is not None or default == "", (
        f"{PARAMETERS_FILE.name}: {param} needs a fallback, ${{{var}={default}}}: older azd sends an empty string "
        "for an unset variable, which replaces the Bicep default"
    )
    assert (fallback or "") == default, (
        f"{PARAMETERS_FILE.name}: fallback of {param} is {fallback!r} but the Bicep default is {default!r}"
    )


@pytest.mark.parametrize("name", sorted(n for n in NAMES if n not in NOT_IN_AZURE and n not in FROM_THE_DEPLOYMENT))
def test_every_overridable_setting_is_mapped_by_its_own_name(name: str) -> None:
    """The README promises `azd env set <APP SETTING NAME> <value>` for every setting infra sets."""
    param = _param_for_setting(name)
    assert param is not None, f"{name} is not set from a main.bicep parameter, so it cannot be overridden"
    var, _ = _parameter_file().get(param, ("", None))
    assert var == name, f"{PARAMETERS_FILE.name}: {param} (app setting {name}) must be mapped from ${{{name}...}}"


@pytest.mark.parametrize("name", sorted(FROM_THE_DEPLOYMENT))
def test_settings_from_the_deployment_are_set_in_infra(name: str) -> None:
    assert name in NAMES, f"{name} is no longer read by the code: update FROM_THE_DEPLOYMENT in this test"
    assert name in _bicep_keys(), f"{name} is not set in infra/*.bicep"


@pytest.mark.parametrize("name", sorted(n for n in NAMES if n not in NOT_IN_AZURE and n not in FROM_THE_DEPLOYMENT))
def test_fallback_is_the_code_default_and_valid(name: str) -> None:
    """What an unset variable deploys is what the code would use, and the code accepts it."""
    param = _param_for_setting(name)
    if param is None or param not in _parameter_file():
        return
    _, fallback = _parameter_file()[param]
    if not fallback:
        return  # empty: the deployment's cloud (ARM_ENDPOINT, AZURE_AUTHORITY_HOST) or required
    default = Settings.model_fields[_field_for(name)].default
    assert fallback == str(default), f"{name}: fallback {fallback!r} differs from the code's default {default!r}"
    load_settings(_minimal_settings(**{name: fallback}))


@pytest.mark.parametrize("name", sorted(n for n in NAMES if n not in NOT_IN_AZURE and n not in FROM_THE_DEPLOYMENT))
def test_bicep_constraints_match_the_code(name: str) -> None:
    """Bicep refuses before deploying what the code would refuse at start, and nothing the code accepts."""
    param_name = _param_for_setting(name)
    if param_name is None:
        return
    param = _main_params()[param_name]
    field = Settings.model_fields[_field_for(name)]
    if param.type == "int":
        lower = None
        for constraint in field.metadata:
            if (ge := getattr(constraint, "ge", None)) is not None:
                lower = ge
            elif (gt := getattr(constraint, "gt", None)) is not None:
                lower = gt + 1
        assert param.bound("minValue") == lower, (
            f"{name}: @minValue of {param_name} is {param.bound('minValue')}, the code's lower bound is {lower}"
        )
        return
    default = _literal_value(param)
    if default:
        if (low := param.bound("minLength")) is not None:
            assert len(default) >= low
        if (high := param.bound("maxLength")) is not None:
            assert len(default) <= high
    for length_name in ("minLength", "maxLength"):
        length = param.bound(length_name)
        if length is None or length < 1 or name == "CONNECTOR_API_AUDIENCE":
            continue
        # The longest (or shortest) value Bicep allows must be one the code accepts.
        sample = {"PULL_QUEUE": "q" * length, "ALERT_QUEUE": "a" * length, "STORAGE_TABLE_PREFIX": "t" * length}.get(
            name
        )
        if sample is not None:
            load_settings(_minimal_settings(**{name: sample}))


def test_location_is_limited_to_flex_consumption_regions() -> None:
    location = _main_params()["location"]
    regions = location.allowed()
    assert regions, "main.bicep: location needs @allowed with the regions that offer Flex Consumption"
    assert all(re.fullmatch(r"[a-z0-9]+", r) for r in regions), f"region names are lower-case ids: {regions}"
    assert len(set(regions)) == len(regions), "duplicate regions in @allowed"
    assert {"eastus", "northeurope", "westeurope", "swedencentral"} <= set(regions)
    assert "metadata" in location.decorators and "location" in location.decorators["metadata"], (
        "location keeps its azd metadata (type: location), so that azd asks with the allowed regions"
    )


def _simple_yaml(text: str) -> dict[str, object]:
    """Enough YAML for azure.yaml: nested mappings of scalars (two-space indents, no lists)."""
    root: dict[str, object] = {}
    stack: list[tuple[int, dict[str, object]]] = [(-1, root)]
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        value = value.strip().strip('"').strip("'")
        if value:
            parent[key] = value
        else:
            child: dict[str, object] = {}
            parent[key] = child
            stack.append((indent, child))
    return root


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split("."))


@cache
def _azure_yaml() -> dict[str, object]:
    return _simple_yaml(AZURE_YAML.read_text(encoding="utf-8"))


def test_azure_yaml_requires_an_azd_that_packages_through_funcignore() -> None:
    required = _azure_yaml().get("requiredVersions")
    assert isinstance(required, dict) and isinstance(required.get("azd"), str), "azure.yaml needs requiredVersions.azd"
    m = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)", required["azd"])
    assert m, f"requiredVersions.azd should be a lower bound (>= x.y.z), got {required['azd']!r}"
    # 1.18.0: first azd that honours .funcignore and sets AZURE_PRINCIPAL_TYPE.
    assert _version(m[1]) >= (1, 18, 0)
    readme = README.read_text(encoding="utf-8")
    assert m[1] in readme, f"the README should name the azd version azure.yaml requires ({m[1]})"


def test_azure_yaml_deploys_main_bicep_and_this_folder_as_the_function_app() -> None:
    config = _azure_yaml()
    infra = config.get("infra")
    assert isinstance(infra, dict)
    assert infra.get("provider") == "bicep"
    path, module = str(infra.get("path")), str(infra.get("module"))
    assert (ROOT / path / f"{module}.bicep").exists()
    assert (ROOT / path / f"{module}.parameters.json") == PARAMETERS_FILE
    services = config.get("services")
    assert isinstance(services, dict) and list(services) == ["api"], "one service, api"
    api = services["api"]
    assert isinstance(api, dict)
    assert api == {"project": ".", "language": "python", "host": "function"}
    # azd finds the app by its azd-service-name tag, which main.bicep derives from serviceName.
    main = _strip_bicep_comments((ROOT / MAIN_BICEP).read_text(encoding="utf-8"))
    assert re.search(r"serviceName\s*:\s*'api'", main), "main.bicep must deploy the app with serviceName 'api'"
    assert re.search(r"output\s+SERVICE_API_NAME\b", main)


def test_easy_auth_settings_are_written_after_the_app_settings() -> None:
    text = _strip_bicep_comments((INFRA / "app" / "api.bicep").read_text(encoding="utf-8"))
    start = text.index("resource authSettings")
    block = text[start : text.index("properties:", start)]
    assert re.search(r"dependsOn\s*:\s*\[\s*settings\s*\]", block), (
        "authSettings must depend on the appsettings resource: concurrent writes to the site's config fail"
    )


def test_funcignore_leaves_out_development_files() -> None:
    entries = {line.strip() for line in FUNCIGNORE.read_text(encoding="utf-8").splitlines()}
    needed = {
        ".venv",
        "*_env/",  # azd's virtual environment, <folder>_env
        ".python_packages",
        "AzuriteConfig",
        "node_modules",
        "tests",
        "localdev",
        "infra",
        "bench",
        "local.settings.json",
        "build/",  # pip install . (azd's restore) builds in place
        "*.egg-info",
    }
    assert needed <= entries, f".funcignore lacks {sorted(needed - entries)}"
    for shipped in ("function_app.py", "host.json", "requirements.txt", "core", "connector", "ingestion"):
        assert shipped not in entries, f".funcignore must not leave out {shipped}"


def test_custom_role_has_only_the_two_read_actions() -> None:
    role = json.loads(CUSTOM_ROLE.read_text(encoding="utf-8"))
    assert role["Name"] == "Activity Log Reader"
    assert role["IsCustom"] is True
    assert sorted(role["Actions"]) == [
        "Microsoft.Insights/eventtypes/values/read",
        "Microsoft.Resources/subscriptions/read",
    ]
    assert role["NotActions"] == role["DataActions"] == role["NotDataActions"] == []
    for rel in ("reader-access.bicep", "core/reader-subscription.bicep"):
        text = _strip_bicep_comments((INFRA / rel).read_text(encoding="utf-8"))
        assert "loadJsonContent(" in text and "activity-log-reader.json" in text, (
            f"infra/{rel} must take the role's actions from activity-log-reader.json"
        )
        assert re.search(r"param\s+role\s+string\s*=\s*'ActivityLogReader'", text), (
            f"infra/{rel}: the custom role is the default, Reader the fallback"
        )
    access = _strip_bicep_comments((INFRA / "reader-access.bicep").read_text(encoding="utf-8"))
    m = re.search(r"param\s+customRoleName\s+string\s*=\s*'([^']*)'", access)
    assert m and m[1] == role["Name"], "reader-access.bicep's customRoleName must default to the JSON's Name"


def test_the_api_scope_and_app_role_are_the_same_in_code_script_and_emulator() -> None:
    from core.auth import API_SCOPE, APP_ROLES
    from localdev.emulator import tokens as emulator_tokens

    script = (ROOT / "infra" / "scripts" / "create-api-app-registration.sh").read_text()
    assert f'SCOPE="{API_SCOPE}"' in script
    assert {re.search(r'^APP_ROLE="([^"]+)"', script, re.M).group(1)} == set(APP_ROLES)  # type: ignore[union-attr]
    assert emulator_tokens.API_SCOPE == API_SCOPE and emulator_tokens.API_APP_ROLE in APP_ROLES


WORKER_THREADS = "PYTHON_THREADPOOL_THREAD_COUNT"


def test_worker_threads_cover_the_queue_batches_and_are_set_and_documented_alike() -> None:
    """The Python worker runs as many pulls at once as the host hands it (batchSize + newBatchThreshold)."""
    from core.transport import POOL_CONNECTIONS
    from ingestion.pull import _FETCHERS
    from localdev.run import DEMO_SETTINGS

    threads = int(_bicep_params("infra/app/api.bicep")["pythonThreadpoolThreadCount"])
    api = _strip_bicep_comments((INFRA / "app" / "api.bicep").read_text(encoding="utf-8"))
    assert f"{WORKER_THREADS}: string(pythonThreadpoolThreadCount)" in api
    queues = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["queues"]
    assert threads >= queues["batchSize"] + queues["newBatchThreshold"]
    assert _FETCHERS._max_workers >= threads  # one page fetched ahead per pull at once
    assert 2 * threads <= POOL_CONNECTIONS  # the pulls' own requests and their fetches ahead
    assert _sample_values()[WORKER_THREADS] == str(threads)
    assert DEMO_SETTINGS[WORKER_THREADS] == str(threads)
    lines = README.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.startswith(f"| `{WORKER_THREADS}`")]
    assert rows and all(f"`{threads}`" in row for row in rows), rows
