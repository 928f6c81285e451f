"""The portal in a real browser: Playwright drives Chromium over the local platform (the app in the
local host, the emulator's Entra ID and ARM, Azurite).

One platform and one browser serve the whole module; each test signs its people in in a fresh
browser context (its own sessionStorage). Tests set the connector's state they need through the
API first, so they do not depend on their order. Screenshots at 1280 and 390 pixels wide are kept
in .local/artifacts/portal/.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from core.auth import Principal
from core.clock import FakeClock
from core.runtime import get_runtime, install_runtime
from localdev.azurite import ROOT, Azurite
from tests.support.platform import call, connector_environ, hosted_app, make_runtime

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / ".local" / "artifacts" / "portal"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("PORTAL_TEST_CHROMIUM", "/usr/bin/chromium")
NEVER = "0 0 0 1 1 *"
PEOPLE = {
    "Global Administrator": "globaladmin@",
    "Security Administrator": "secadmin@",
    "Regular User": "user@",
    "Guest User": "guest_example.com#EXT#@",
}
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1;alert(1)">'
HOSTILE_DESCRIPTION = "<script>window.__pwned=2;alert(2)</script><img src=x onerror=alert(3)>"
HOSTILE_USER_NAME = "<b onmouseover=alert(4)>Mallory</b>"
MALLORY_OID = "6d1f4f7e-5a0e-4c43-9a3f-0b7d1c2e9a11"
EVE_OID = "0c7e3b52-96a4-4f0e-8d55-7a1e6f2b4c90"
HOSTILE_POLICY_NAME = 'Role changes <img src=x onerror="window.__pwned=3;alert(5)">'
WIDTHS = (1280, 390)
DAILY_ALERT_LIMIT = 5  # a policy raising more alerts in a day is paused


# --- the platform: emulator + Azurite + the app in the local host, once for the module ----------


class Platform:
    def __init__(self, emulator: Any, host: Any, clock: FakeClock) -> None:
        self.emulator = emulator
        self.host = host
        self.clock = clock
        self.portal = f"{host.base_url}/api/portal/"

    def api(self, method: str, path: str, kind: str = "global_admin", body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = None if body is None else {"Content-Type": "application/json"}
        token = self.emulator.mint_token(kind)
        return call(self.host.base_url, method, path, token, key=None, body=data, headers=headers)

    def disconnect(self) -> None:
        status, body = self.api("DELETE", "/api/connectors/azure")
        assert status in (200, 404), body

    def connect(self) -> dict[str, Any]:
        status, body = self.api("POST", "/api/connectors/azure")
        assert status in (200, 201), body
        return body

    def pull(self, minutes: int = 5) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        self.host.run_function("fanout", wait=True)
        assert self.host.wait_idle(timeout=120), "the pull queue did not drain"


@pytest.fixture(scope="module")
def platform(azurite: Azurite) -> Iterator[Platform]:
    from localdev.emulator import Emulator

    # The browser's clock is the real one: the platform's starts three hours ago and moves on
    # from there, so tokens and activities are never from the browser's future.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    clock = FakeClock(start)
    host_json = json.loads((ROOT / "host.json").read_text())
    host_json["extensions"]["queues"].update(visibilityTimeout="00:00:00", maxPollingInterval="00:00:00.200")
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        Emulator(clock=clock, seed=7, check_arm_token_lifetime=False) as emulator,
    ):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_pem_path))
        environ = connector_environ(
            emulator,
            azurite,
            FANOUT_SCHEDULE=NEVER,
            RETENTION_SCHEDULE=NEVER,
            POLICY_DAILY_ALERT_LIMIT=str(DAILY_ALERT_LIMIT),
        )
        runtime = make_runtime(environ, clock)
        install_runtime(runtime)
        try:
            with hosted_app(environ, monkeypatch, host_json=host_json) as host:
                yield Platform(emulator, host, clock)
        finally:
            install_runtime(None)


@pytest.fixture(scope="module")
def ingested(platform: Platform) -> dict[str, Any]:
    """Connected, an hour of activities pulled (one of them hostile), one subscription forbidden."""
    emulator = platform.emulator
    subs = [s for s in emulator.subscriptions if s.state == "Enabled"]
    target, forbidden = subs[0], subs[-1]
    platform.disconnect()
    platform.connect()
    connected_at = platform.clock.now()
    emulator.set_subscription(forbidden.subscription_id, forbidden=True)
    hostile = emulator.inject_event(
        target.subscription_id,
        at=connected_at + timedelta(minutes=2),
        category="Administrative",
        operation="Microsoft.Storage/storageAccounts/write",
        status="Succeeded",
        resourceId=(
            f"/subscriptions/{target.subscription_id}/resourceGroups/rg-web/providers/"
            f"Microsoft.Storage/storageAccounts/{HOSTILE_NAME}"
        ),
        description=HOSTILE_DESCRIPTION,
        caller="mallory@contoso.com",
        claims={
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "mallory@contoso.com",
            "http://schemas.microsoft.com/identity/claims/objectidentifier": MALLORY_OID,
            "name": HOSTILE_USER_NAME,
            "ipaddr": "198.51.100.66",
        },
    )
    for _ in range(14):  # 70 minutes, a fan-out every five
        platform.pull()
    status, body = platform.api("GET", f"/api/activities/{hostile['eventDataId']}")
    assert status == 200, body
    return {"hostile": hostile, "target": target, "forbidden": forbidden}


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # PORTAL_TEST_CHROMIUM=playwright: the Chromium of `playwright install chromium`.
    own = CHROMIUM == "playwright"
    if not own and not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium or set PORTAL_TEST_CHROMIUM (see README)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch() if own else pw.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


class Session:
    """A browser context for one person, recording what must never happen in the page."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page = context.new_page()
        self.page.set_default_timeout(30_000)
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("console", self._console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        # The API's 4xx/5xx answers that a test asks for are logged by Chromium as failed loads.
        text = message.text
        if message.type == "error" and "Failed to load resource" not in text:
            self.errors.append(f"console: {text}")


@pytest.fixture
def open_session(browser: Browser) -> Iterator[Callable[..., Session]]:
    sessions: list[Session] = []

    def open_(width: int = 1280) -> Session:
        context = browser.new_context(
            ignore_https_errors=True,  # the emulator's local CA
            viewport={"width": width, "height": 900},
            timezone_id="Europe/Paris",
            locale="en-GB",
        )
        session = Session(context)
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        session.context.close()
    for session in sessions:
        assert session.dialogs == [], "a dialog was opened by the page"
        assert session.errors == []


def sign_in(session: Session, platform: Platform, person: str, route: str = "#/connectors") -> Page:
    page = session.page
    page.goto(platform.portal + route)
    page.get_by_role("button", name="Sign in with Microsoft").click()
    page.get_by_role("button", name=person, exact=True).click()  # the emulator's sign-in page
    expect(page.locator("#account")).to_contain_text(person)
    expect(page).to_have_url(re.compile(re.escape(platform.portal) + re.escape(route) + "$"))
    return page


def heading(page: Page) -> Any:
    return page.get_by_role("heading", level=1)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)


def axe_violations(page: Page) -> list[Any]:
    # Evaluated through the DevTools protocol, which the page's CSP does not govern.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return list(result)


def status_cell(page: Page) -> Any:
    return page.get_by_role("table", name="Connected apps").locator("tbody tr").first.locator("td").first


# --- sign-in ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("person", list(PEOPLE))
def test_each_person_signs_in_and_out_and_tokens_stay_out_of_local_storage(
    platform: Platform, open_session: Callable[..., Session], person: str
) -> None:
    session = open_session()
    page = sign_in(session, platform, person)
    expect(page.locator("#account")).to_contain_text(PEOPLE[person])
    expect(heading(page)).to_have_text("App connectors")
    local = page.evaluate("JSON.stringify(Object.entries(localStorage))")
    assert "eyJ" not in local and "accesstoken" not in local.lower()
    cached = page.evaluate("JSON.stringify(Object.entries(sessionStorage))")
    assert "accesstoken" in cached.lower()  # MSAL's cache is in sessionStorage
    assert "code=" not in page.url and "state=" not in page.url  # the authority's answer is dropped
    page.get_by_role("button", name="Sign out").click()
    expect(heading(page)).to_have_text("Sign in")
    expect(page.locator("#account")).to_be_empty()
    assert "accesstoken" not in page.evaluate("JSON.stringify(Object.entries(sessionStorage))").lower()


EXPIRE_ACCESS_TOKENS = """() => {
    for (const key of Object.keys(sessionStorage)) {
        let entry;
        try { entry = JSON.parse(sessionStorage.getItem(key)); } catch { continue; }
        if (entry && entry.credentialType === "AccessToken") {
            entry.expiresOn = entry.extendedExpiresOn = "1";
            sessionStorage.setItem(key, JSON.stringify(entry));
        }
    }
}"""
TOKEN_ENDPOINT = re.compile(r".*/oauth2/v2\.0/token.*")


def test_a_token_that_cannot_be_renewed_for_lack_of_network_is_an_error_on_the_page_not_a_sign_in(
    platform: Platform, open_session: Callable[..., Session]
) -> None:
    page = sign_in(open_session(), platform, "Regular User", "#/activities")
    expect(page.get_by_text("Loading…")).to_have_count(0)  # MSAL is done with its cache (it may write it again)
    page.evaluate(EXPIRE_ACCESS_TOKENS)
    page.route(TOKEN_ENDPOINT, lambda route: route.abort("internetdisconnected"))
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("Could not load")
    assert page.url.startswith(platform.portal)  # still here, with what the user was doing
    expect(page.locator("#account")).to_contain_text("user@")

    # The authority refuses the refresh token (expired or revoked): interaction is needed, so sign in again.
    page.unroute(TOKEN_ENDPOINT)
    refused = {"error": "invalid_grant", "error_description": "AADSTS700082: The refresh token has expired."}
    page.route(TOKEN_ENDPOINT, lambda route: route.fulfill(status=400, json=refused))
    page.reload()
    expect(page.get_by_role("button", name="Regular User", exact=True)).to_be_visible()  # the emulator's sign-in page
    assert not page.url.startswith(platform.portal)


# --- App connectors and the connect flow ----------------------------------------------------------


@pytest.mark.parametrize("person", ["Regular User", "Guest User"])
def test_a_person_without_an_admin_role_sees_why_connect_and_disconnect_do_nothing(
    platform: Platform, open_session: Callable[..., Session], person: str
) -> None:
    page = sign_in(open_session(), platform, person, "#/connectors/azure/connect")
    page.get_by_role("button", name="Connect Microsoft Azure").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("You cannot connect Microsoft Azure.")
    expect(alert).to_contain_text("Global Administrator")
    expect(alert).to_contain_text("Security Administrator")
    expect(alert).to_be_focused()
    if person == "Regular User":
        screenshot(page, "connect-forbidden")

    # Disconnecting is refused the same way, and says so.
    platform.connect()
    page.get_by_role("link", name="App connectors").first.click()
    page.get_by_role("button", name="Disconnect Microsoft Azure").click()
    page.get_by_role("dialog").get_by_role("button", name="Disconnect", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Microsoft Azure was not disconnected.")
    expect(alert).to_contain_text("Security Administrator")
    expect(status_cell(page).locator(".status")).not_to_have_text("Disconnected")


def test_global_administrator_connects_and_sees_connected(
    platform: Platform, open_session: Callable[..., Session]
) -> None:
    platform.disconnect()
    page = sign_in(open_session(), platform, "Global Administrator")
    page.get_by_role("link", name="+ Connect an app").click()
    expect(heading(page)).to_have_text("Connect an app")
    page.get_by_role("link", name=re.compile("^Microsoft Azure")).click()
    expect(heading(page)).to_have_text("Connect Microsoft Azure")
    main = page.get_by_role("main")
    promises = ("Global Administrator", "Every subscription", "Accounts are filled in", "Resource Manager", "from the")
    for promise in promises:
        expect(main).to_contain_text(promise)
    screenshot(page, "connect-azure")
    page.get_by_role("button", name="Connect Microsoft Azure").click()
    expect(heading(page)).to_have_text("App connectors")
    expect(page.get_by_role("status").first).to_contain_text("Microsoft Azure is connected")
    expect(status_cell(page).locator(".status")).to_have_text("Connected")
    row = page.get_by_role("table", name="Connected apps").locator("tbody tr").first
    expect(row).to_contain_text("globaladmin@")
    subs = page.get_by_role("table", name="Subscriptions of the Microsoft Azure connector").locator("tbody tr")
    readable = [s for s in platform.emulator.subscriptions if s.listed and s.state != "Deleted"]
    expect(subs).to_have_count(len(readable))


def test_an_identity_without_reader_shows_the_error_and_its_fix(
    platform: Platform, open_session: Callable[..., Session]
) -> None:
    emulator = platform.emulator
    platform.disconnect()
    listed = [s.subscription_id for s in emulator.subscriptions if s.listed]
    for sub in listed:  # the connector's identity sees no subscription: no Reader anywhere
        emulator.set_subscription(sub, listed=False)
    try:
        page = sign_in(open_session(), platform, "Security Administrator", "#/connectors/azure/connect")
        page.get_by_role("button", name="Connect Microsoft Azure").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Error")
        expect(alert).to_contain_text("Reader")
        screenshot(page, "connect-error")
        alert.get_by_role("link", name="How to fix this").click()
        expect(page).to_have_url(re.compile(r"#/troubleshooting/[A-Za-z0-9_.-]+$"))
        code = page.url.rsplit("/", 1)[1]
        entry = page.locator(f"[id='ts-{code}']")
        expect(entry).to_be_focused()
        expect(page.get_by_role("article").filter(has=entry)).to_contain_text("Fix")
    finally:
        for sub in listed:
            emulator.set_subscription(sub, listed=True)


def test_disconnect_asks_for_confirmation(platform: Platform, open_session: Callable[..., Session]) -> None:
    platform.connect()
    page = sign_in(open_session(), platform, "Global Administrator")
    page.get_by_role("button", name="Disconnect Microsoft Azure").click()
    dialog = page.get_by_role("dialog", name="Disconnect Microsoft Azure?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    screenshot(page, "disconnect-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(status_cell(page).locator(".status")).not_to_have_text("Disconnected")
    assert platform.api("GET", "/api/connectors/azure")[1]["status"] != "Disconnected"

    page.get_by_role("button", name="Disconnect Microsoft Azure").click()
    page.get_by_role("dialog").get_by_role("button", name="Disconnect", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Microsoft Azure is disconnected")
    expect(status_cell(page).locator(".status")).to_have_text("Disconnected")
    assert platform.api("GET", "/api/connectors/azure")[1]["status"] == "Disconnected"
    expect(page.get_by_role("link", name="Connect Microsoft Azure again")).to_be_visible()


def test_keyboard_only_connect_flow(platform: Platform, open_session: Callable[..., Session]) -> None:
    platform.disconnect()
    page = sign_in(open_session(), platform, "Security Administrator")

    def tab_to(name: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate("document.activeElement && document.activeElement.textContent.trim()")
            if focused and focused.startswith(name):
                return
        raise AssertionError(f"Tab never reached {name!r}")

    tab_to("+ Connect an app")
    page.keyboard.press("Enter")
    expect(heading(page)).to_be_focused()
    expect(heading(page)).to_have_text("Connect an app")
    tab_to("Microsoft Azure")
    page.keyboard.press("Enter")
    expect(heading(page)).to_have_text("Connect Microsoft Azure")
    expect(heading(page)).to_be_focused()
    tab_to("Connect Microsoft Azure")
    page.keyboard.press("Enter")
    expect(heading(page)).to_have_text("App connectors")
    expect(heading(page)).to_be_focused()
    expect(status_cell(page).locator(".status")).to_have_text("Connected")
    # Disconnect and cancel it, by keyboard too.
    tab_to("Disconnect Microsoft Azure")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Enter")  # Cancel has the focus: the safe choice
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(status_cell(page).locator(".status")).to_have_text("Connected")


# --- the connector page with data: subscriptions, the chart --------------------------------------


def test_the_connector_page_shows_subscriptions_with_their_fix_and_the_chart(
    platform: Platform, ingested: dict[str, Any], open_session: Callable[..., Session]
) -> None:
    platform.connect()
    platform.pull()  # after a reconnect, the forbidden subscription fails its first pull again
    page = sign_in(open_session(), platform, "Regular User")
    expect(status_cell(page).locator(".status")).to_have_text("Warning")
    subs = page.get_by_role("table", name="Subscriptions of the Microsoft Azure connector")
    forbidden = subs.locator("tbody tr").filter(has_text=ingested["forbidden"].subscription_id)
    expect(forbidden.locator(".status")).to_have_text("Error")
    expect(forbidden).to_contain_text("Reader")
    expect(forbidden.get_by_role("link", name="How to fix this")).to_have_attribute(
        "href", re.compile(r"^#/troubleshooting/.+")
    )
    target = subs.locator("tbody tr").filter(has_text=ingested["target"].subscription_id)
    expect(target.locator(".status")).to_have_text("OK")

    _, per_day = platform.api("GET", "/api/connectors/azure/activity-per-day?days=30")
    chart = page.get_by_role("img", name=re.compile("Activities per day"))
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() > 0
    page.get_by_text("Show the numbers as a table").click()
    table = page.get_by_role("table", name=re.compile("Activities per day"))
    expect(table.locator("tbody tr")).to_have_count(len(per_day["days"]))
    today = table.locator("tbody tr").last
    expect(today.locator("th")).to_have_text(per_day["days"][-1])
    total_today = sum(s["counts"][-1] for s in per_day["subscriptions"])
    assert sum(sum(s["counts"]) for s in per_day["subscriptions"]) > 0
    expect(today.locator("td").last).to_have_text(f"{total_today:,}")
    screenshot(page, "app-connectors")


# --- the activity log ---------------------------------------------------------------------------


def loaded(page: Page) -> None:
    """Wait until the page's table says what it shows (not "Loading ..."); "more" only when there is more."""
    status = page.locator(".table-status")
    expect(status).to_have_text(re.compile(r"^(Showing|No )"))
    more = page.get_by_role("button", name=re.compile("^Show more"))
    if "more are available" in status.inner_text():
        expect(more).to_be_visible()
    else:
        expect(more).to_be_hidden()


def _shown(text: str | None) -> str:
    """The value of a filter button, without its screen-reader prefix ("Show activities of user: ")."""
    return (text or "").split(": ", 1)[-1].strip()


def _row_ids(page: Page) -> list[str]:
    return list(
        page.locator("table tbody tr td:first-child a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    )


def _row_times(page: Page) -> list[str]:
    return list(page.locator("table tbody tr time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))"))


def test_activity_log_pages_and_filters(
    platform: Platform, ingested: dict[str, Any], open_session: Callable[..., Session]
) -> None:
    page = sign_in(open_session(), platform, "Regular User", "#/activities")
    rows = page.locator("table tbody tr")
    loaded(page)
    expect(page.locator(".table-status")).to_contain_text("more are available")
    first_page = rows.count()
    assert 0 < first_page <= 50
    times = _row_times(page)
    assert times == sorted(times, reverse=True)  # newest first
    page.get_by_role("button", name="Show more activities").click()
    loaded(page)
    assert rows.count() > first_page
    assert _row_times(page) == sorted(_row_times(page), reverse=True)
    assert len(set(_row_ids(page))) == rows.count()  # no activity twice
    # Times are in the browser's time zone (Europe/Paris here), the UTC instant in datetime.
    assert re.search(r"CET|CEST|GMT\+1|GMT\+2", page.locator("table tbody tr time").first.inner_text())

    # A user in a row filters by them. The row is the newest whose user acted from an IP address
    # (which row is newest depends on the tests run before; some principals never show an address).
    with_ip = rows.filter(has=page.locator("td:nth-child(2) button")).filter(has=page.locator("td:nth-child(6) button"))
    first_user = with_ip.first.locator("td").nth(1).get_by_role("button")
    who = _shown(first_user.text_content())
    first_user.click()
    expect(page).to_have_url(re.compile(r"#/activities\?user="))
    expect(page.get_by_label("User (UPN or id)")).to_have_value(who)
    loaded(page)
    users = rows.locator("td:nth-child(2) button").all_text_contents()
    assert users and all(_shown(u) == who for u in users)

    # An IP address in a row filters by it (with the user filter kept).
    ip_button = rows.locator("td:nth-child(6) button").first
    ip = _shown(ip_button.text_content())
    ip_button.click()
    expect(page.get_by_label("IP address")).to_have_value(ip)
    loaded(page)
    assert {_shown(t) for t in rows.locator("td:nth-child(6)").all_text_contents()} == {ip}

    # The filter form: a status and a time range, in the browser's time zone.
    page.get_by_role("link", name="Clear filters").click()
    expect(page.get_by_label("User (UPN or id)")).to_have_value("")
    page.get_by_label("Status").fill("Failed")
    page.get_by_label("Subscription").select_option(ingested["target"].subscription_id.lower())
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"status=Failed"))
    loaded(page)
    statuses = set(rows.locator("td:nth-child(5)").all_inner_texts())
    assert statuses == {"Failed"}, statuses
    status, expected = platform.api(
        "GET", f"/api/activities?status=Failed&subscriptionId={ingested['target'].subscription_id}&limit=100"
    )
    assert status == 200
    if expected["continuation"] is None:
        expect(rows).to_have_count(len(expected["items"]))
    screenshot(page, "activity-log")


def test_hostile_activity_renders_as_text_with_its_raw_event(
    platform: Platform, ingested: dict[str, Any], open_session: Callable[..., Session]
) -> None:
    hostile = ingested["hostile"]
    for width in WIDTHS:
        session = open_session(width)
        page = sign_in(session, platform, "Global Administrator", "#/activities?user=mallory%40contoso.com")
        row = page.locator("table tbody tr").filter(has_text=HOSTILE_NAME)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(HOSTILE_USER_NAME)
        row.get_by_role("link").first.click()
        expect(heading(page)).to_have_text("Activity")
        main = page.get_by_role("main")
        expect(main).to_contain_text(HOSTILE_NAME)
        raw = page.locator("pre.raw")
        expect(raw).to_contain_text(HOSTILE_DESCRIPTION.replace('"', '\\"'))
        assert json.loads(raw.inner_text())["eventDataId"] == hostile["eventDataId"]
        assert page.locator("main img, main script, main iframe").count() == 0
        assert page.evaluate("window.__pwned") is None
        screenshot(page, "activity-hostile")
        assert session.dialogs == []


def test_accounts_list_and_an_account_opens_its_activities(
    platform: Platform, ingested: dict[str, Any], open_session: Callable[..., Session]
) -> None:
    page = sign_in(open_session(), platform, "Security Administrator", "#/accounts")
    table = page.get_by_role("table", name=re.compile("Accounts"))
    loaded(page)
    _, listed = platform.api("GET", "/api/accounts?limit=50")
    expect(table.locator("tbody tr")).to_have_count(len(listed["items"]))
    screenshot(page, "accounts")
    mallory = table.locator("tbody tr").filter(has_text="mallory@contoso.com")
    expect(mallory).to_have_count(1)
    expect(mallory.locator("td").nth(5)).to_have_text("1")
    mallory.get_by_role("link", name="mallory@contoso.com").click()
    expect(heading(page)).to_have_text("Account: mallory@contoso.com")
    activities = page.get_by_role("table", name=re.compile("Activities of mallory"))
    loaded(page)
    expect(activities.locator("tbody tr")).to_have_count(1)
    expect(activities).to_contain_text(HOSTILE_NAME)

    # The type filter.
    page.get_by_role("link", name="Accounts").first.click()
    page.get_by_label("Type").select_option("servicePrincipal")
    page.get_by_role("button", name="Apply filter").click()
    expect(page).to_have_url(re.compile(r"type=servicePrincipal"))
    loaded(page)
    expect(table.locator("tbody tr").first).to_be_visible()
    assert set(table.locator("tbody tr td:first-child").all_inner_texts()) == {"Service principal"}


# --- policies and alerts --------------------------------------------------------------------------

ROLE_WRITE = "Microsoft.Authorization/roleAssignments/write"


def raise_role_assignment(
    platform: Platform, subscription_id: str, upn: str, oid: str, count: int = 1
) -> dict[str, Any]:
    """`count` role assignments by `upn` (resource and display name hostile), pulled until stored."""
    events = [_role_assignment(platform, subscription_id, upn, oid, second) for second in range(count)]
    for _ in range(6):
        platform.pull()
        if all(platform.api("GET", f"/api/activities/{e['eventDataId']}")[0] == 200 for e in events):
            return events[0]
    raise AssertionError("the injected role assignments were never stored")


def _role_assignment(platform: Platform, subscription_id: str, upn: str, oid: str, second: int) -> dict[str, Any]:
    return platform.emulator.inject_event(
        subscription_id,
        at=platform.clock.now() + timedelta(minutes=1, seconds=second),
        category="Administrative",
        operation=ROLE_WRITE,
        status="Succeeded",
        resourceId=(
            f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleAssignments/{HOSTILE_NAME}"
        ),
        caller=upn,
        claims={
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": upn,
            "http://schemas.microsoft.com/identity/claims/objectidentifier": oid,
            "name": HOSTILE_USER_NAME,
            "ipaddr": "203.0.113.7",
        },
    )


@pytest.fixture(scope="module")
def raised_alert(platform: Platform, ingested: dict[str, Any]) -> dict[str, Any]:
    """A policy (made through the API) and the alert an injected role assignment raised."""
    platform.connect()
    status, policy = platform.api(
        "POST",
        "/api/policies",
        body={
            "templateId": "role-assignment-or-elevated-access",
            "name": "Role assignments by Eve",
            "filter": {"actions": [ROLE_WRITE], "statuses": ["Succeeded"], "users": ["eve@contoso.com"]},
        },
    )
    assert status == 201, policy
    event = raise_role_assignment(platform, ingested["target"].subscription_id, "eve@contoso.com", EVE_OID)
    status, alerts = platform.api("GET", f"/api/alerts?policyId={policy['id']}")
    assert status == 200 and len(alerts["items"]) == 1, alerts
    return {"policy": policy, "alert": alerts["items"][0], "event": event}


def test_administrator_creates_edits_and_toggles_a_policy_and_resolves_its_alert(
    platform: Platform, ingested: dict[str, Any], open_session: Callable[..., Session]
) -> None:
    platform.connect()
    session = open_session()
    page = sign_in(session, platform, "Global Administrator", "#/policies")
    expect(heading(page)).to_have_text("Policies")
    page.get_by_label("Template", exact=True).select_option("role-assignment-or-elevated-access")
    page.get_by_role("button", name="Create policy").click()
    expect(heading(page)).to_have_text("Policy: Role assignment or elevated access")
    expect(page.get_by_role("status").first).to_contain_text("created from its template")
    policy_id = page.url.rsplit("/", 1)[1]
    status, created = platform.api("GET", f"/api/policies/{policy_id}")
    assert status == 200 and created["version"] == 1 and created["kind"] == "singleActivity"
    expect(page.get_by_label("Actions (wildcards * and ?)")).to_have_value("\n".join(created["filter"]["actions"]))

    # A bad value: the API's 400 is shown beside the form and at the field it names.
    ranges = page.get_by_label("IP address in ranges (address or CIDR)")
    ranges.fill("10.0.0.0/33")
    page.get_by_role("button", name="Save changes").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("filter.ipInRanges.0")
    expect(alert).to_contain_text("10.0.0.0/33")
    expect(alert).to_be_focused()
    expect(ranges).to_have_attribute("aria-invalid", "true")
    expect(ranges).to_have_accessible_description(re.compile(r"filter\.ipInRanges\.0: .*10\.0\.0\.0/33"))
    screenshot(page, "policy-invalid")
    assert platform.api("GET", f"/api/policies/{policy_id}")[1]["version"] == 1

    # A good edit: a name (admin input, rendered as text), one user, no ranges.
    ranges.fill("")
    page.get_by_label("Name", exact=True).fill(HOSTILE_POLICY_NAME)
    page.get_by_label("Severity").select_option("medium")
    page.get_by_label("Users (object id or UPN)").fill("trudy@contoso.com")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").first).to_contain_text("The policy is saved")
    expect(heading(page)).to_have_text(f"Policy: {HOSTILE_POLICY_NAME}")
    _, saved = platform.api("GET", f"/api/policies/{policy_id}")
    assert saved["name"] == HOSTILE_POLICY_NAME and saved["severity"] == "medium" and saved["version"] == 2
    assert saved["filter"]["users"] == ["trudy@contoso.com"] and saved["filter"]["ipInRanges"] is None
    assert saved["filter"]["actions"] == created["filter"]["actions"]

    # Disable, then enable again.
    page.get_by_role("button", name="Disable policy").click()
    expect(page.get_by_role("status").first).to_contain_text("The policy is disabled")
    assert platform.api("GET", f"/api/policies/{policy_id}")[1]["state"] == "disabled"
    page.get_by_role("button", name="Enable policy").click()
    expect(page.get_by_role("status").first).to_contain_text("The policy is enabled")
    assert platform.api("GET", f"/api/policies/{policy_id}")[1]["state"] == "enabled"

    # The list shows it.
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Policies").click()
    policies = page.get_by_role("table", name=re.compile("Policies"))
    row = policies.locator("tbody tr").filter(has_text=HOSTILE_POLICY_NAME)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Enabled")
    expect(row).to_contain_text("Medium")
    screenshot(page, "policies")

    # A matching activity, pulled: its alert is in the list.
    event = raise_role_assignment(platform, ingested["target"].subscription_id, "trudy@contoso.com", str(uuid.uuid4()))
    page.get_by_role("link", name="Alerts", exact=True).click()
    expect(heading(page)).to_have_text("Alerts")
    page.get_by_label("Policy", exact=True).select_option(policy_id)
    page.get_by_label("Status", exact=True).select_option("open")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"#/alerts\?status=open&policyId="))
    loaded(page)
    rows = page.get_by_role("table", name=re.compile("Alerts")).locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(HOSTILE_POLICY_NAME)
    expect(rows.first).to_contain_text("trudy@contoso.com")
    expect(rows.first).to_contain_text("Open")
    screenshot(page, "alerts")

    # Its page: the activity that raised it (as text, linking to the activity), resolved with a comment.
    rows.first.get_by_role("link").first.click()
    expect(heading(page)).to_have_text("Alert")
    activities = page.get_by_role("table", name=re.compile("Activities that raised the alert"))
    expect(activities.locator("tbody tr")).to_have_count(1)
    expect(activities).to_contain_text(HOSTILE_NAME)
    expect(activities).to_contain_text(HOSTILE_USER_NAME)
    assert page.locator("main img, main script, main iframe").count() == 0
    activity_link = activities.locator("tbody tr td:first-child a")
    expect(activity_link).to_have_attribute("href", f"#/activities/{event['eventDataId']}")
    screenshot(page, "alert")
    page.get_by_label("New status").select_option("resolved")
    page.get_by_label("Comment").fill("Trudy's change was approved <b>CHG-42</b>")
    page.get_by_role("button", name="Save status").click()
    expect(page.get_by_role("status").first).to_contain_text("The alert is resolved")
    main = page.get_by_role("main")
    expect(main).to_contain_text("Trudy's change was approved <b>CHG-42</b>")
    expect(main.locator(".details")).to_contain_text("Resolved")
    alert_id = page.url.rsplit("/", 1)[1]
    _, resolved = platform.api("GET", f"/api/alerts/{alert_id}")
    assert resolved["status"] == "resolved" and resolved["updatedBy"].startswith("globaladmin@")
    assert resolved["comment"] == "Trudy's change was approved <b>CHG-42</b>"
    activity_link.click()
    expect(heading(page)).to_have_text("Activity")
    assert page.evaluate("window.__pwned") is None

    # Deleting asks first; the alert stays.
    page.goto(platform.portal + f"#/policies/{policy_id}")
    page.get_by_role("button", name="Delete policy").click()
    dialog = page.get_by_role("dialog", name="Delete this policy?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    expect(dialog).to_contain_text(HOSTILE_POLICY_NAME)
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(heading(page)).to_have_text("Policies")
    expect(page.get_by_role("status").first).to_contain_text("is deleted")
    assert platform.api("GET", f"/api/policies/{policy_id}")[0] == 404
    assert platform.api("GET", f"/api/alerts/{alert_id}")[0] == 200
    assert session.dialogs == []


def test_a_regular_user_sees_policies_and_alerts_and_why_changes_are_refused(
    platform: Platform, raised_alert: dict[str, Any], open_session: Callable[..., Session]
) -> None:
    policy, raised = raised_alert["policy"], raised_alert["alert"]
    page = sign_in(open_session(390), platform, "Regular User", f"#/policies/{policy['id']}")
    expect(heading(page)).to_have_text(f"Policy: {policy['name']}")

    page.get_by_label("Severity").select_option("low")
    page.get_by_role("button", name="Save changes").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("You cannot change policies.")
    expect(alert).to_contain_text("Security Administrator")
    expect(alert).to_be_focused()
    screenshot(page, "policy-forbidden")
    page.get_by_role("button", name="Disable policy").click()
    expect(page.get_by_role("alert").first).to_contain_text("You cannot disable policies.")
    page.get_by_role("button", name="Delete policy").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("alert").first).to_contain_text("You cannot delete policies.")
    _, unchanged = platform.api("GET", f"/api/policies/{policy['id']}")
    assert unchanged["version"] == policy["version"] and unchanged["state"] == "enabled"

    page.goto(platform.portal + "#/policies")
    page.get_by_role("button", name="Create policy").click()
    expect(page.get_by_role("alert")).to_contain_text("You cannot create policies.")

    page.goto(platform.portal + f"#/alerts/{raised['id']}")
    expect(heading(page)).to_have_text("Alert")
    page.get_by_label("Comment").fill("not mine to close")
    page.get_by_role("button", name="Save status").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("You cannot change alerts.")
    expect(alert).to_contain_text("Security Administrator")
    screenshot(page, "alert-forbidden")
    assert platform.api("GET", f"/api/alerts/{raised['id']}")[1]["status"] == "open"


def test_only_administrators_see_a_webhook_url_others_its_host(
    platform: Platform, open_session: Callable[..., Session]
) -> None:
    from policies import service

    hook = "https://hooks.example.com/in?sig=secret-in-the-url"
    runtime = get_runtime()  # the same tables as the host; straight to the store (the host has no webhook secret)
    admin = Principal(object_id=None, upn="admin@contoso.com", name=None, tenant_id="t")
    record = service.create_policy(
        runtime.policies, runtime.engine, runtime.clock, admin,
        {"name": "Webhook policy", "severity": "low", "kind": "singleActivity",
         "filter": {"users": ["nobody@contoso.com"]}, "webhookUrl": hook},
        webhook_secret="k" * 32,
    )  # fmt: skip
    try:
        page = sign_in(open_session(), platform, "Regular User", f"#/policies/{record.id}")
        field = page.get_by_label("Webhook URL (https://, optional)")
        expect(field).to_have_value("")
        expect(field).to_have_accessible_description(
            "Alerts are sent to hooks.example.com; only administrators see the whole URL."
        )
        assert "secret-in-the-url" not in page.content()
        administrator = sign_in(open_session(), platform, "Security Administrator", f"#/policies/{record.id}")
        expect(administrator.get_by_label("Webhook URL (https://, optional)")).to_have_value(hook)
    finally:
        service.delete_policy(runtime.policies, runtime.engine, record.id)


def test_a_policy_paused_by_the_daily_limit_says_why_and_is_enabled_again(
    platform: Platform, ingested: dict[str, Any], open_session: Callable[..., Session]
) -> None:
    platform.connect()
    status, policy = platform.api(
        "POST",
        "/api/policies",
        body={
            "templateId": "role-assignment-or-elevated-access",
            "name": "Noisy",
            "filter": {"users": ["noisy@contoso.com"]},
        },
    )
    assert status == 201, policy
    raise_role_assignment(
        platform, ingested["target"].subscription_id, "noisy@contoso.com", str(uuid.uuid4()), DAILY_ALERT_LIMIT + 1
    )
    _, paused = platform.api("GET", f"/api/policies/{policy['id']}")
    assert paused["state"] == "paused", paused

    page = sign_in(open_session(), platform, "Security Administrator", "#/policies")
    row = page.get_by_role("table", name=re.compile("Policies")).locator("tbody tr").filter(has_text="Noisy")
    expect(row).to_contain_text("Paused")
    expect(row).to_contain_text(paused["pausedMessage"])
    row.get_by_role("link", name="Noisy").click()
    expect(page.get_by_role("main").locator(".details")).to_contain_text(paused["pausedMessage"])
    screenshot(page, "policy-paused")
    page.get_by_role("button", name="Enable policy again").click()
    expect(page.get_by_role("status").first).to_contain_text("The policy is enabled")
    _, enabled = platform.api("GET", f"/api/policies/{policy['id']}")
    assert enabled["state"] == "enabled" and enabled["version"] == paused["version"] + 1
    assert platform.api("DELETE", f"/api/policies/{policy['id']}")[0] == 204


# --- accessibility and the screenshots of every page ---------------------------------------------

PAGES = [
    ("app-connectors", "#/connectors"),
    ("connect-an-app", "#/connectors/add"),
    ("connect-azure", "#/connectors/azure/connect"),
    ("activity-log", "#/activities"),
    ("accounts", "#/accounts"),
    ("policies", "#/policies"),
    ("alerts", "#/alerts"),
    ("troubleshooting", "#/troubleshooting"),
]


def test_a_malformed_address_says_the_page_failed_and_the_page_is_ready(
    platform: Platform, open_session: Callable[..., Session]
) -> None:
    page = open_session().page
    page.goto(platform.portal + "#/troubleshooting")
    expect(page.locator("body")).to_have_attribute("data-ready", "troubleshooting")
    page.goto(platform.portal + "#/troubleshooting/%E0")  # not a UTF-8 escape: decoding it throws
    expect(heading(page)).to_have_text("This page failed")
    expect(page.get_by_role("alert")).to_contain_text("Something went wrong.")
    expect(page.locator("body")).to_have_attribute("data-ready", "troubleshooting/%E0")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_has_no_accessibility_violations(
    platform: Platform,
    ingested: dict[str, Any],
    raised_alert: dict[str, Any],
    open_session: Callable[..., Session],
    width: int,
) -> None:
    platform.connect()
    session = open_session(width)
    page = session.page
    page.goto(platform.portal + "#/connectors")
    expect(heading(page)).to_have_text("Sign in")
    found = {"sign-in": axe_violations(page)}
    screenshot(page, "sign-in")
    sign_in(session, platform, "Global Administrator")
    _, accounts = platform.api("GET", "/api/accounts?limit=1")
    pages = [
        *PAGES,
        ("activity", f"#/activities/{ingested['hostile']['eventDataId']}"),
        ("account", f"#/accounts/{accounts['items'][0]['id']}"),
        ("policy", f"#/policies/{raised_alert['policy']['id']}"),
        ("alert", f"#/alerts/{raised_alert['alert']['id']}"),
    ]
    for name, route in pages:
        page.goto(platform.portal + route)
        path = route.removeprefix("#/").split("?")[0]
        expect(page.locator("body")).to_have_attribute("data-ready", path)
        expect(page.get_by_role("main").get_by_role("status").filter(has_text="Loading")).to_have_count(0)
        if name == "app-connectors":
            expect(page.get_by_role("img", name=re.compile("Activities per day"))).to_be_visible()
            page.get_by_text("Show the numbers as a table").click()
        found[name] = axe_violations(page)
        screenshot(page, name)
    assert {name: v for name, v in found.items() if v} == {}
