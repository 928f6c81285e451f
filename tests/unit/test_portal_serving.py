"""The portal's serving logic: which paths name a file, content types, headers, config.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import load_settings
from portal.serving import api_identifier, content_type, portal_config, resolve, security_headers

pytestmark = pytest.mark.unit

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "3f2a1c9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html>")
    (static / "assets" / "app-1.js").write_text("export {}")
    (static / ".hidden").write_text("secret")
    (tmp_path / "secret.txt").write_text("outside")
    (static / "link.txt").symlink_to(tmp_path / "secret.txt")
    return static


def test_the_empty_path_is_the_index(root: Path) -> None:
    assert resolve("", root) == (root / "index.html").resolve()


def test_a_file_in_a_folder(root: Path) -> None:
    assert resolve("assets/app-1.js", root) == (root / "assets" / "app-1.js").resolve()


@pytest.mark.parametrize("path", [
    "..", "../secret.txt", "assets/../index.html", "./index.html", "%2e%2e/secret.txt", "%2e%2e",
    "/etc/passwd", "//etc/passwd", "C:/Windows/win.ini", "assets\\..\\index.html", ".hidden", "assets/",
    "assets", "index.html/", "missing.js", "link.txt", "index.html\x00.js", "a" * 200,
])  # fmt: skip
def test_anything_else_names_nothing(root: Path, path: str) -> None:
    assert resolve(path, root) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("portal.css", "text/css; charset=utf-8"),
    ("logo.svg", "image/svg+xml"),
    ("font.woff2", "font/woff2"),
    ("blob.bin", "application/octet-stream"),
])  # fmt: skip
def test_content_types(name: str, expected: str) -> None:
    assert content_type(Path(name)) == expected


def test_the_security_headers_allow_only_the_page_itself_and_the_authority() -> None:
    headers = security_headers("https://login.microsoftonline.com")
    csp = headers["Content-Security-Policy"]
    assert csp == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' https://login.microsoftonline.com; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'; object-src 'none'"
    )
    assert "unsafe" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert (
        "connect-src 'self' https://127.0.0.1:8443;"
        in security_headers("https://127.0.0.1:8443")["Content-Security-Policy"]
    )


def test_config_in_azure_uses_the_api_registration_as_the_client() -> None:
    settings = load_settings({**BASE, "AZURE_TENANT_ID": TENANT, "CONNECTOR_API_AUDIENCE": APP})
    assert portal_config(settings) == {
        "clientId": APP,
        "authority": f"https://login.microsoftonline.com/{TENANT}",
        "tenantId": TENANT,
        "knownAuthorities": ["login.microsoftonline.com"],
        "scopes": [f"api://{APP}/Connector.Access"],
    }


def test_config_locally_and_with_its_own_client_id() -> None:
    settings = load_settings({
        **BASE, "AZURE_TENANT_ID": TENANT, "CONNECTOR_API_AUDIENCE": "api://azure-app-connector",
        "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443/", "PORTAL_CLIENT_ID": "portal-client",
    })  # fmt: skip
    config = portal_config(settings)
    assert config["clientId"] == "portal-client"
    assert config["authority"] == f"https://127.0.0.1:8443/{TENANT}"
    assert config["knownAuthorities"] == ["127.0.0.1:8443"]
    assert config["scopes"] == ["api://azure-app-connector/Connector.Access"]


def test_config_names_a_missing_setting() -> None:
    with pytest.raises(SettingsError, match="AZURE_TENANT_ID"):
        portal_config(load_settings({**BASE, "CONNECTOR_API_AUDIENCE": APP}))


@pytest.mark.parametrize(("audience", "identifier"), [
    (APP, f"api://{APP}"), (f"api://{APP}", f"api://{APP}"), ("api://contoso.com/connector/", "api://contoso.com/connector"),
])  # fmt: skip
def test_the_api_identifier(audience: str, identifier: str) -> None:
    assert api_identifier(audience) == identifier
