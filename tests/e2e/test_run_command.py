"""`make run`'s program: starts Azurite, the emulator and the local host, connects, shows activities."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from localdev.azurite import ROOT

pytestmark = pytest.mark.e2e


def test_run_command_connects_and_shows_activities_arriving(tmp_path: Path) -> None:
    # 50 s: the demo fan-out fires every 20 s and reads up to 10 s ago, so after 40 s a fan-out has
    # read at least 10 s of events, whatever second the run started at; 10 s more for a busy machine.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "localdev.run",
            "--duration",
            "50",
            "--interval",
            "5",
            "--port",
            "0",
            "--emulator-port",
            "0",
            "--events-per-hour",
            "3600",
            "--max-surface-delay",
            "3",
            "--state-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for name in ("connector_connect", "connector_get", "fanout", "pull", "retention", "activities_list"):
        assert name in out, f"{name} missing from the hosted functions table"
    assert re.search(r"Portal: http://127\.0\.0\.1:\d+/api/portal/", out), out
    for person in ("Global Administrator", "globaladmin@contoso.com", "secadmin@contoso.com", "user@contoso.com"):
        assert person in out
    assert "/oauth2/v2.0/logout?post_logout_redirect_uri=" in out  # the way past the emulator's local CA
    assert "POST /api/connectors/azure -> 201" in out
    assert "Connector: Connected" in out
    counts = [int(n) for n in re.findall(r"activities=(\d+)", out)]
    assert max(counts) > 0, out
    seen = [int(n) for n in re.findall(r"accounts seen: (\d+)", out)]
    assert seen and max(seen) > 0, out
    assert "latest: " in out
