"""The portal's static files: the committed bundle is the build of its sources, and the sources
never insert data as HTML, run inline script or style, or keep anything in localStorage."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from localdev.azurite import ROOT

pytestmark = pytest.mark.unit

PORTAL = ROOT / "portal"
SOURCES = sorted((PORTAL / "src").rglob("*.js"))


def test_the_portal_has_sources() -> None:
    names = {p.relative_to(PORTAL / "src").as_posix() for p in SOURCES}
    assert {"main.js", "auth.js", "api.js", "dom.js"} <= names


def test_the_committed_bundle_is_a_fresh_build_of_the_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed to build the portal (make setup installs the npm packages)"
    assert (ROOT / "node_modules" / "esbuild").is_dir(), "run make setup: the esbuild npm package is missing"
    out = tmp_path / "app.js"
    subprocess.run([node, "portal/build.mjs", str(out)], cwd=ROOT, check=True, timeout=120)
    committed = (PORTAL / "static" / "app.js").read_bytes()
    assert out.read_bytes() == committed, "portal/static/app.js is stale: run `npm run build:portal` and commit it"


FORBIDDEN = ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser", "createContextualFragment",
             "srcdoc", "eval(", "new Function", "localStorage"]  # fmt: skip


@pytest.mark.parametrize("pattern", FORBIDDEN)
def test_the_sources_never_parse_data_as_html_nor_keep_tokens_in_local_storage(pattern: str) -> None:
    offenders = [p.name for p in SOURCES if pattern in _code(p)]
    assert offenders == [], f"{pattern} in {offenders}"


def test_the_page_has_no_inline_script_or_style() -> None:
    for page in (PORTAL / "static").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], page.name
        assert "<style" not in html, page.name
        assert not re.search(r"\sstyle=", html), page.name
        assert not re.search(r"\son[a-z]+=", html), page.name
    for source in SOURCES:
        # Styles come from portal.css only: no style attribute or property set from code.
        assert not re.search(r"\.style\b|\bstyle:", _code(source)), source.name


def test_msal_keeps_its_cache_in_session_storage() -> None:
    auth = (PORTAL / "src" / "auth.js").read_text(encoding="utf-8")
    assert 'cacheLocation: "sessionStorage"' in auth


def _code(path: Path) -> str:
    """The source without its comments (which may name what the code must not do)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", text)


def test_every_path_the_portal_calls_without_a_token_is_excluded_from_easy_auth() -> None:
    """With Easy Auth on, a tokenless call to a path it guards gets a 401 before the app runs."""
    calls = re.findall(r'"(/api/[^"]+)",\s*\{[^}]*anonymous:\s*true', (PORTAL / "src" / "api.js").read_text())
    assert "/api/troubleshooting" in calls
    bicep = (ROOT / "infra" / "app" / "api.bicep").read_text()
    block = re.search(r"excludedPaths:\s*\[(.*?)\]", bicep, re.S)
    assert block is not None
    excluded = set(re.findall(r"'([^']+)'", block.group(1)))
    assert {"/api/portal", "/api/portal/", "/api/portal/*"} <= excluded
    assert set(calls) <= excluded
