"""`make run`: the connector end to end on the local platform.

Starts Azurite, the Entra ID + ARM emulator and the local Functions host running
`function_app.py`, prints the portal's URL and who can sign in to it, connects as the emulator's
Global Administrator (unless `--no-connect`: then connect from the portal), then keeps the timer
and the queue running and prints activities arriving from every subscription. Ctrl-C stops it all.

With `--azure`, no emulator is started: the Azure settings come from the environment (or
`local.settings.json`) and the administrator's token from CONNECTOR_ADMIN_TOKEN or the Azure
CLI (`az account get-access-token --resource <CONNECTOR_API_AUDIENCE>`).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from core.auth import ADMIN_ROLES
from core.settings import default_values, setting_names
from localdev.azurite import ROOT, Azurite
from localdev.host.host import load_local_settings

logger = logging.getLogger("localdev.run")

DEMO_SETTINGS = {
    # Faster than production so that a demo shows activity within a minute.
    "FANOUT_SCHEDULE": "*/20 * * * * *",
    "PULL_LAG_SECONDS": "10",
    "PULL_OVERLAP_SECONDS": "300",
    # As infra deploys it: the worker runs host.json's batchSize + newBatchThreshold pulls at once.
    "PYTHON_THREADPOOL_THREAD_COUNT": "32",
    # Local receivers (a webhook on this machine) are allowed here, never in Azure.
    "ALERT_WEBHOOK_ALLOW_PRIVATE": "true",
}


def _request(method: str, url: str, token: str | None = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["x-functions-key"] = key
    req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:  # loopback only
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode("utf-8", "replace")


def _admin_token_for_azure(audience: str) -> str:
    token = os.environ.get("CONNECTOR_ADMIN_TOKEN")
    if token:
        return token
    az = shutil.which("az")
    if not az:
        raise SystemExit("Set CONNECTOR_ADMIN_TOKEN, or install the Azure CLI and run `az login` first.")
    command = [az, "account", "get-access-token", "--resource", audience, "--query", "accessToken", "-o", "tsv"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def _print_status(body: dict[str, Any]) -> None:
    print(f"\nConnector: {body.get('status')}" + (f" - {body['message']}" if body.get("message") else ""), flush=True)
    for sub in body.get("subscriptions", []):
        print(
            f"  {sub['displayName'][:28]:28} {sub['status']:8} {sub['state']:9} "
            f"activities={sub['activities']:<6} watermark={sub.get('watermark')}"
        )


def _print_portal(base: str, emulator: Any) -> None:
    """The portal's URL and, on the emulator, the way past its local CA and who can sign in."""
    if emulator is None:
        portal = base.replace("://127.0.0.1:", "://localhost:") + "/api/portal/"
        print(f"\nPortal: {portal}\n  Sign in with your Entra ID account (the registration needs this redirect URI).")
        return
    portal = f"{base}/api/portal/"
    start = f"{emulator.url}/{emulator.tenant_id}/oauth2/v2.0/logout?{urlencode({'post_logout_redirect_uri': portal})}"
    print(f"\nPortal: {portal}")
    print("  First time in this browser, open this instead: the browser warns about the emulator's local CA")
    print(f"  ({emulator.ca_pem_path}); accept it once (or trust that CA) and you land on the portal:\n    {start}")
    print("  Sign in as (no password; the emulator lists them):")
    for person in emulator.directory.people:
        can = "can connect and disconnect" if set(person.wids) & ADMIN_ROLES.keys() else "reads only (connect: 403)"
        print(f"    {person.name:23} {person.upn:36} {can}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7071, help="local host HTTP port (default 7071)")
    parser.add_argument("--emulator-port", type=int, default=8443)
    parser.add_argument("--events-per-hour", type=int, default=600, help="emulator events per subscription")
    parser.add_argument(
        "--max-surface-delay",
        type=float,
        default=45.0,
        help="emulator: longest delay, in seconds, before an event shows in the Activity Log",
    )
    parser.add_argument(
        "--page-latency",
        type=float,
        default=0.5,
        help="seconds each emulated Activity Log page takes, ARM's pace (default 0.5; 0: none)",
    )
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between progress reports")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: run until Ctrl-C)")
    parser.add_argument("--azure", action="store_true", help="use real Azure settings instead of the emulator")
    parser.add_argument("--no-connect", action="store_true", help="do not connect: connect from the portal")
    parser.add_argument(
        "--state-dir", type=Path, default=ROOT / ".local", help="where Azurite and the emulator keep their files"
    )
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("azure", "msal", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    state: Path = args.state_dir
    state.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    # Azurite keeps its data in memory (each demo connects from scratch); the folder holds its log, one per run.
    shutil.rmtree(state / "azurite", ignore_errors=True)
    (state / "azurite").mkdir(parents=True)
    azurite = Azurite(location=state / "azurite").start()
    print(f"Azurite: tables {azurite.table_port}, queues {azurite.queue_port}, blobs {azurite.blob_port}")
    emulator = None
    host = None
    try:
        settings = {**default_values(), **DEMO_SETTINGS, "AzureWebJobsStorage": azurite.connection_string}
        if args.azure:
            load_local_settings(ROOT)  # like Core Tools: local.settings.json fills what the environment lacks
            settings.update(
                {
                    name: os.environ[name]
                    for name in setting_names()
                    if name in os.environ and not name.startswith("AzureWebJobsStorage")
                }
            )
            audience = os.environ.get("CONNECTOR_API_AUDIENCE") or ""
            if not audience:
                raise SystemExit("--azure needs CONNECTOR_API_AUDIENCE (and AZURE_TENANT_ID, AZURE_CLIENT_ID, ...)")
            admin_token = _admin_token_for_azure(audience)
        else:
            from core.clock import SystemClock
            from localdev.emulator import Emulator

            emulator = Emulator(
                clock=SystemClock(),
                port=args.emulator_port,
                state_dir=state / "emulator",
                max_surface_delay=args.max_surface_delay,
                page_latency=args.page_latency,
            )
            emulator.set_events_per_hour(args.events_per_hour)
            emulator.start()
            os.environ["REQUESTS_CA_BUNDLE"] = str(emulator.ca_pem_path)
            print(f"Emulator (Entra ID + ARM): {emulator.url}  tenant {emulator.tenant_id}")
            settings.update(emulator.connector_settings())
            admin_token = emulator.mint_token("global_admin")
        os.environ.update(settings)

        from localdev.host import LocalHost
        from localdev.host.host import function_table

        key = secrets.token_urlsafe(24)
        host = LocalHost(app_dir=ROOT, port=args.port, function_key=key, master_key=key).start()
        base = host.base_url
        print(f"\nLocal host: {base}/api  (the API needs a token, no key; /admin key for this run: {key})")
        print(function_table(host.functions), flush=True)
        _print_portal(base, emulator)

        if args.no_connect:
            body: Any = {"status": "not connected (--no-connect): connect from the portal"}
        else:
            status, body = _request("POST", f"{base}/api/connectors/azure", admin_token, key)
            print(f"\nPOST /api/connectors/azure -> {status}")
        if isinstance(body, dict) and "status" in body:
            _print_status(body)
        else:
            print(body)
            return 1
        host.run_function("fanout")

        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(args.interval)
            _, body = _request("GET", f"{base}/api/connectors/azure", admin_token, key)
            if isinstance(body, dict) and "subscriptions" in body:
                _print_status(body)
            _, accounts = _request("GET", f"{base}/api/accounts?limit=100", admin_token, key)
            _, latest = _request("GET", f"{base}/api/activities?limit=3", admin_token, key)
            if isinstance(accounts, dict):
                print(f"  accounts seen: {len(accounts.get('items', []))}")
            if isinstance(latest, dict):
                for item in latest.get("items", []):
                    who = (item.get("user") or {}).get("upn") or (item.get("user") or {}).get("id")
                    print(f"  latest: {item['timestamp']} {who} {item['action']} {item['status']}")
    except KeyboardInterrupt:
        print("\nStopping...")
    finally:
        if host is not None:
            host.stop()
        if emulator is not None:
            emulator.stop()
        azurite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
