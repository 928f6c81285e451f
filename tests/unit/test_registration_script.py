"""infra/scripts/create-api-app-registration.sh against a fake `az` that answers from canned data.

The fake records every call, so the tests see which registration the script changes, that it
refuses to guess between two registrations of the same name, and what it sends to Graph.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(shutil.which("bash") is None, reason="the registration script is a bash script"),
]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "scripts" / "create-api-app-registration.sh"
NAME = "Azure app connector API"
GRAPH = "https://graph.microsoft.com"
DEFAULT_ACCESS = "00000000-0000-0000-0000-000000000000"

# A stand-in for the Azure CLI: reads the directory from $FAKE_AZ_STATE, appends each call to
# $FAKE_AZ_LOG, and answers the few commands the script uses the way az does.
FAKE_AZ = r"""
import json
import os
import sys

args = sys.argv[1:]
state_path = os.environ["FAKE_AZ_STATE"]
with open(state_path, encoding="utf-8") as f:
    state = json.load(f)
with open(os.environ["FAKE_AZ_LOG"], "a", encoding="utf-8") as f:
    f.write(json.dumps(args) + "\n")


def opt(name):
    return args[args.index(name) + 1] if name in args else None


def save():
    with open(state_path, "w", encoding="utf-8") as f:
        json.dump(state, f)


def out(value):
    print(value if opt("-o") == "tsv" else json.dumps(value))


def fail(message, code=3):
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(code)


cmd = args[:3]
if args[:2] == ["account", "show"]:
    out(state["tenant"])
elif args[:2] == ["cloud", "show"]:
    out(state["graph"] + "/")
elif cmd == ["ad", "app", "list"]:
    # Like az: Graph's startswith(displayName, ...), which ignores case.
    prefix = opt("--display-name").lower()
    out([a for a in state["apps"] if a["displayName"].lower().startswith(prefix)])
elif cmd == ["ad", "app", "create"]:
    app = {"appId": "new-app-id", "id": "new-object-id", "displayName": opt("--display-name"),
           "api": {"oauth2PermissionScopes": []}, "appRoles": []}
    state["apps"].append(app)
    save()
    out(app["appId"])
elif cmd == ["ad", "app", "show"]:
    apps = [a for a in state["apps"] if a["appId"] == opt("--id")]
    if not apps:
        fail("Resource does not exist")
    out(apps[0])
elif cmd == ["ad", "sp", "show"]:
    sp = state["sps"].get(opt("--id"))
    if sp is None:
        fail("Service principal not found")
    out(sp)
elif cmd == ["ad", "sp", "create"]:
    sp = {"id": "sp-" + opt("--id"), "appId": opt("--id")}
    state["sps"][opt("--id")] = sp
    save()
    out(sp)
elif args[0] == "rest":
    if opt("--method") == "GET" and opt("--uri").endswith("/appRoleAssignedTo"):
        out({"value": state["assignments"]})
    else:
        out({})
else:
    fail("fake az: unexpected command " + " ".join(args), 9)
"""


def _app(app_id: str, object_id: str, name: str = NAME, **extra: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "appId": app_id,
        "id": object_id,
        "displayName": name,
        "api": {"oauth2PermissionScopes": []},
        "appRoles": [],
    }
    app.update(extra)
    return app


class Run:
    def __init__(self, result: subprocess.CompletedProcess[str], calls: list[list[str]]) -> None:
        self.returncode = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.calls = calls

    def rest(self, method: str) -> list[tuple[str, Any]]:
        """(uri, parsed body) of every `az rest` call with this method."""
        found = []
        for call in self.calls:
            if call[0] == "rest" and call[call.index("--method") + 1] == method:
                body = call[call.index("--body") + 1] if "--body" in call else None
                found.append((call[call.index("--uri") + 1], json.loads(body) if body else None))
        return found

    def ran(self, *prefix: str) -> bool:
        return any(call[: len(prefix)] == list(prefix) for call in self.calls)


@pytest.fixture
def run_script(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\n{FAKE_AZ}", encoding="utf-8")
    az.chmod(0o755)
    # The script's own helpers run python3: make it this interpreter.
    (bin_dir / "python3").symlink_to(sys.executable)

    def run(
        apps: list[dict[str, Any]],
        *args: str,
        sps: dict[str, Any] | None = None,
        assignments: list[dict[str, str]] | None = None,
    ) -> Run:
        state = tmp_path / "state.json"
        log = tmp_path / "calls.jsonl"
        log.write_text("", encoding="utf-8")
        state.write_text(
            json.dumps(
                {
                    "tenant": "tenant-id",
                    "graph": GRAPH,
                    "apps": apps,
                    "sps": sps or {},
                    "assignments": assignments or [],
                }
            ),
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_AZ_STATE": str(state),
            "FAKE_AZ_LOG": str(log),
        }
        result = subprocess.run(
            ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        return Run(result, calls)

    return run


def test_updates_the_app_with_the_exact_name_not_one_that_only_starts_with_it(run_script) -> None:
    apps = [
        _app("prefix-app", "prefix-object", f"{NAME} (old)"),
        _app("exact-app", "exact-object"),
        _app("case-app", "case-object", NAME.upper()),
    ]
    run = run_script(apps)
    assert run.returncode == 0, run.stderr
    assert not run.ran("ad", "app", "create")
    patched = [uri for uri, _ in run.rest("PATCH") if "/applications/" in uri]
    assert patched == [f"{GRAPH}/v1.0/applications/exact-object"]
    assert "CONNECTOR_API_AUDIENCE=exact-app" in run.stdout


def test_refuses_when_two_apps_have_the_exact_name(run_script) -> None:
    apps = [_app("first-app", "first-object"), _app("second-app", "second-object")]
    run = run_script(apps)
    assert run.returncode == 1
    assert "2 app registrations are named" in run.stderr
    assert "first-app" in run.stderr and "second-app" in run.stderr
    assert "--app-id" in run.stderr
    # Nothing was created or changed.
    assert not run.ran("ad", "app", "create")
    assert not run.ran("ad", "sp", "create")
    assert not run.ran("rest")


def test_app_id_picks_one_of_several_with_the_same_name(run_script) -> None:
    apps = [_app("first-app", "first-object"), _app("second-app", "second-object")]
    run = run_script(apps, "--app-id", "second-app")
    assert run.returncode == 0, run.stderr
    assert not run.ran("ad", "app", "list")
    assert [uri for uri, _ in run.rest("PATCH") if "/applications/" in uri] == [
        f"{GRAPH}/v1.0/applications/second-object"
    ]


def test_creates_the_app_when_none_has_the_exact_name(run_script) -> None:
    run = run_script([_app("other-app", "other-object", f"{NAME} v2")])
    assert run.returncode == 0, run.stderr
    create = next(call for call in run.calls if call[:3] == ["ad", "app", "create"])
    assert create[create.index("--display-name") + 1] == NAME
    assert create[create.index("--sign-in-audience") + 1] == "AzureADMyOrg"
    assert [uri for uri, _ in run.rest("PATCH") if "/applications/" in uri] == [
        f"{GRAPH}/v1.0/applications/new-object-id"
    ]
    assert run.ran("ad", "sp", "create", "--id", "new-app-id")
    assert "CONNECTOR_API_AUDIENCE=new-app-id" in run.stdout


def test_defines_the_scope_the_app_role_and_requires_assignment(run_script) -> None:
    run = run_script([_app("exact-app", "exact-object")])
    assert run.returncode == 0, run.stderr
    (_, body), *_ = [(uri, body) for uri, body in run.rest("PATCH") if "/applications/" in uri]
    assert body["identifierUris"] == ["api://exact-app"]
    assert body["api"]["requestedAccessTokenVersion"] == 2
    assert body["groupMembershipClaims"] == "DirectoryRole"
    (scope,) = body["api"]["oauth2PermissionScopes"]
    assert scope["value"] == "Connector.Access" and scope["isEnabled"] is True
    (role,) = body["appRoles"]
    assert role["value"] == "Activities.Read.All"
    assert role["allowedMemberTypes"] == ["Application"]
    assert role["description"] == "Read the connector's activities, accounts and status"
    assert role["isEnabled"] is True
    sp_patches = [body for uri, body in run.rest("PATCH") if "/servicePrincipals/" in uri]
    assert sp_patches == [{"appRoleAssignmentRequired": True}]


def test_rerun_keeps_existing_scope_and_role_ids(run_script) -> None:
    existing_scope = {"id": "scope-id", "value": "Connector.Access", "isEnabled": True, "type": "User"}
    existing_role = {
        "id": "role-id",
        "value": "Activities.Read.All",
        "allowedMemberTypes": ["Application"],
        "isEnabled": True,
    }
    other_role = {"id": "other-role", "value": "Something.Else", "allowedMemberTypes": ["User"], "isEnabled": True}
    app = _app(
        "exact-app",
        "exact-object",
        api={"oauth2PermissionScopes": [existing_scope]},
        appRoles=[existing_role, other_role],
    )
    run = run_script([app], sps={"exact-app": {"id": "sp-object", "appId": "exact-app"}})
    assert run.returncode == 0, run.stderr
    (_, body), *_ = [(uri, body) for uri, body in run.rest("PATCH") if "/applications/" in uri]
    assert [s["id"] for s in body["api"]["oauth2PermissionScopes"]] == ["scope-id"]
    assert [r["id"] for r in body["appRoles"]] == ["role-id", "other-role"]
    assert not run.ran("ad", "sp", "create")
    assert "role-id" in run.stdout


def test_assigns_users_and_grants_the_app_role_to_services(run_script) -> None:
    sps = {
        "exact-app": {"id": "api-sp", "appId": "exact-app"},
        "client-app": {"id": "client-sp", "appId": "client-app"},
    }
    app = _app(
        "exact-app",
        "exact-object",
        appRoles=[{"id": "role-id", "value": "Activities.Read.All", "allowedMemberTypes": ["Application"]}],
    )
    already = [{"principalId": "admins-group", "appRoleId": DEFAULT_ACCESS, "resourceId": "api-sp"}]
    run = run_script(
        [app],
        "--assign",
        "admin-user",
        "--assign",
        "admins-group",
        "--grant-app",
        "client-app",
        sps=sps,
        assignments=already,
    )
    assert run.returncode == 0, run.stderr
    posts = run.rest("POST")
    assert all(uri == f"{GRAPH}/v1.0/servicePrincipals/api-sp/appRoleAssignedTo" for uri, _ in posts)
    assert [body for _, body in posts] == [
        {"principalId": "admin-user", "resourceId": "api-sp", "appRoleId": DEFAULT_ACCESS},
        {"principalId": "client-sp", "resourceId": "api-sp", "appRoleId": "role-id"},
    ]
    assert "Already assigned: user or group admins-group" in run.stderr


def test_assignment_requirement_can_be_turned_off(run_script) -> None:
    run = run_script([_app("exact-app", "exact-object")], "--no-assignment-required")
    assert run.returncode == 0, run.stderr
    sp_patches = [body for uri, body in run.rest("PATCH") if "/servicePrincipals/" in uri]
    assert sp_patches == [{"appRoleAssignmentRequired": False}]


def test_preauthorized_clients_get_the_scope(run_script) -> None:
    cli = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    run = run_script([_app("exact-app", "exact-object")], "--preauthorize", cli)
    assert run.returncode == 0, run.stderr
    app_patches = [body for uri, body in run.rest("PATCH") if "/applications/" in uri]
    scope_id = app_patches[0]["api"]["oauth2PermissionScopes"][0]["id"]
    assert app_patches[1] == {
        "api": {"preAuthorizedApplications": [{"appId": cli, "delegatedPermissionIds": [scope_id]}]}
    }


def test_the_portal_redirect_uris_are_added_to_the_existing_ones(run_script) -> None:
    existing = {"redirectUris": ["https://portal.contoso.com/api/portal/"]}
    run = run_script([_app("exact-app", "exact-object", spa=existing)], "--function-app", "func-abc", "--local-portal")
    assert run.returncode == 0, run.stderr
    (body,) = [body for uri, body in run.rest("PATCH") if "/applications/" in uri]
    assert body["spa"]["redirectUris"] == [
        "https://portal.contoso.com/api/portal/",
        "https://func-abc.azurewebsites.net/api/portal/",
        "http://localhost:7071/api/portal/",
    ]
    (scope,) = body["api"]["oauth2PermissionScopes"]
    assert scope["value"] == "Connector.Access"  # what the portal asks for


def test_without_portal_options_the_redirect_uris_are_left_as_they_are(run_script) -> None:
    run = run_script([_app("exact-app", "exact-object")])
    (body,) = [body for uri, body in run.rest("PATCH") if "/applications/" in uri]
    assert body["spa"] == {"redirectUris": []}


def test_a_plain_http_portal_url_is_refused(run_script) -> None:
    run = run_script([_app("exact-app", "exact-object")], "--portal-url", "http://portal.contoso.com/api/portal/")
    assert run.returncode != 0
    assert "must be https://" in run.stderr
    assert not [uri for uri, _ in run.rest("PATCH") if "/applications/" in uri]
