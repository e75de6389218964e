"""Watchlists and user management in a real headless Chromium, on the SCP's SQLite store.

A trader builds a watchlist whose rows fill live from the (stand-in) WDS, and finds it again
in another browser; an administrator creates a user on the users page, sees the one-time
password, changes the role, ends the user's session and reads it all in the audit log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mdp_core.settings import Secret, load
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.passwords import ScryptParameters
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

from .test_dashboard import (  # the stand-in WDS and its synthetic market
    TIMEOUT_MS,
    TOKEN_SECRET,
    StandInWds,
    _Heartbeats,
    _Revocations,
)

pytestmark = pytest.mark.browser

PASSWORDS = {"ops": "ops-browser-password", "tom": "tom-browser-password"}


@pytest.fixture
async def wds() -> AsyncIterator[StandInWds]:
    server = StandInWds()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def scp(wds: StandInWds) -> AsyncIterator[ControlPlane]:
    settings = load(
        ScpSettings,
        environ={},
        host="127.0.0.1",
        port=0,
        wds_url=wds.url,
        wds_token_secret=Secret(TOKEN_SECRET),
        session_secret=Secret("browser-test-session-secret"),
        database_url=Secret("sqlite:///:memory:"),
    )
    fast = ScryptParameters(n=1 << 10)
    users = UserStore(
        [
            User("ops", "admin", hash_password(PASSWORDS["ops"], fast)),
            User("tom", "trader", hash_password(PASSWORDS["tom"], fast)),
        ]
    )
    plane = ControlPlane(settings, users=users, redis=_Heartbeats(), revocations=_Revocations())
    await plane.start()
    yield plane
    await plane.stop()


async def _logged_in(browser: Any, scp: ControlPlane, user: str, password: str) -> Any:
    context = await browser.new_context(viewport={"width": 1480, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(f"{scp.url}/login")
    await page.fill("input[name=user]", user)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{scp.url}/")
    return page


async def test_a_watchlist_fills_live_and_follows_the_user_to_another_browser(
    scp: ControlPlane, wds: StandInWds
) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = await _logged_in(browser, scp, "tom", PASSWORDS["tom"])
            await page.wait_for_selector("#conn[data-state=live]")
            await page.wait_for_selector("#w-watchlist")
            await page.fill("#w-watchlist .watchlist-new input[name=name]", "Momentum")
            await page.click("#w-watchlist .watchlist-new button")
            await page.wait_for_function(
                "() => document.querySelector('#w-watchlist select').value === 'Momentum'"
            )
            for symbol in ("acme", "BOLT", "DYNE"):
                await page.fill("#w-watchlist .watchlist-add input[name=symbol]", symbol)
                await page.click("#w-watchlist .watchlist-add button")
                await page.wait_for_selector(f'#w-watchlist tr[data-symbol="{symbol.upper()}"]')
            # Rows fill from the WDS quote feeds, and follow live updates.
            await page.wait_for_function(
                "() => document.querySelector('#w-watchlist tr[data-symbol=ACME] .price')"
                "?.textContent === '14.20'"
            )
            quote = dict(wds.feeds["quote:ACME"], price=15.05)
            await wds.publish("quote:ACME", quote)
            await page.wait_for_function(
                "() => document.querySelector('#w-watchlist tr[data-symbol=ACME] .price')"
                "?.textContent === '15.05'"
            )
            # A bad symbol gets a clear message and changes nothing.
            await page.fill("#w-watchlist .watchlist-add input[name=symbol]", "no way!")
            await page.click("#w-watchlist .watchlist-add button")
            await page.wait_for_function(
                "() => document.querySelector('#w-watchlist .notice').textContent"
                ".includes('not a symbol')"
            )
            await page.click('#w-watchlist tr[data-symbol="BOLT"] button.remove')
            await page.wait_for_function(
                "() => !document.querySelector('#w-watchlist tr[data-symbol=BOLT]')"
            )
            # A second list; then back to the first, which the layout remembers.
            await page.fill("#w-watchlist .watchlist-new input[name=name]", "Later")
            await page.click("#w-watchlist .watchlist-new button")
            await page.wait_for_function(
                "() => document.querySelector('#w-watchlist select').value === 'Later'"
            )
            await page.select_option("#w-watchlist select", "Momentum")
            await page.wait_for_selector('#w-watchlist tr[data-symbol="DYNE"]')
            await page.wait_for_function(
                "async () => (await (await fetch('/api/layout')).json()).layout.watchlist"
                " === 'Momentum'"
            )
            # Clicking a watchlist symbol follows it in the quote panel; a filter is set: both
            # are part of the layout the server keeps.
            await page.click('#w-watchlist tr[data-symbol="DYNE"] button.symbol')
            await page.wait_for_selector('#w-quote[data-symbol="DYNE"]')
            await page.fill("#filters input[name=minPrice]", "5")
            await page.wait_for_function(
                "async () => { const l = (await (await fetch('/api/layout')).json()).layout;"
                " return l.follow === 'DYNE' && l.filters?.minPrice === 5; }"
            )
            assert page.errors == []

            other = await _logged_in(browser, scp, "tom", PASSWORDS["tom"])  # another browser
            await other.wait_for_function(
                "() => document.querySelector('#w-watchlist select')?.value === 'Momentum'"
            )
            await other.wait_for_selector('#w-watchlist tr[data-symbol="ACME"]')
            rows = await other.locator("#w-watchlist tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.symbol)"
            )
            assert rows == ["ACME", "DYNE"]
            options = await other.locator("#w-watchlist select option").all_inner_texts()
            assert options == ["Momentum", "Later"]
            await other.wait_for_selector('#w-quote[data-symbol="DYNE"]')
            assert await other.input_value("#filters input[name=minPrice]") == "5"
            await other.wait_for_function(
                "() => !document.querySelector('#w-gainers tr[data-key=\"EVOX\"]')"
                " && document.querySelector('#w-gainers tr[data-key=\"ACME\"]')"
            )
            assert other.errors == []
        finally:
            await browser.close()


async def test_an_admin_manages_users_and_reads_the_audit_log(
    scp: ControlPlane, wds: StandInWds
) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    del wds
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            admin = await _logged_in(browser, scp, "ops", PASSWORDS["ops"])
            await admin.goto(f"{scp.url}/users")
            await admin.wait_for_selector("#users-state[data-state=live]")
            await admin.wait_for_selector('#user-table tr[data-user="tom"]')

            await admin.fill("#new-user input[name=name]", "nina")
            await admin.select_option("#new-user select[name=role]", "trader")
            await admin.click("#new-user button[type=submit]")
            await admin.wait_for_selector('#user-table tr[data-user="nina"]')
            password = await admin.locator("#secret-value").inner_text()
            assert len(password) >= 16

            # Duplicate names are refused with a clear message.
            await admin.fill("#new-user input[name=name]", "nina")
            await admin.click("#new-user button[type=submit]")
            await admin.wait_for_function(
                "() => document.querySelector('#users-notice').textContent"
                ".includes('exists already')"
            )

            nina = await _logged_in(browser, scp, "nina", password)
            me = await nina.evaluate("async () => (await fetch('/api/me')).json()")
            assert me["role"] == "trader"

            await admin.select_option('#user-table tr[data-user="nina"] select', "viewer")
            await admin.wait_for_function(
                "() => document.querySelector('#users-notice').textContent === 'nina updated'"
            )
            await admin.click('#user-table tr[data-user="nina"] button[data-act=sessions]')
            await admin.wait_for_function(
                "() => document.querySelector('#users-notice').textContent"
                ".includes('1 session(s) of nina ended')"
            )
            status = await nina.evaluate("async () => (await fetch('/api/me')).status")
            assert status == 401

            await admin.click('#user-table tr[data-user="nina"] button[data-act=toggle]')
            await admin.wait_for_selector(
                '#user-table tr[data-user="nina"] td.state:text("disabled")'
            )

            await admin.fill("#audit-filter input[name=action]", "user.")
            await admin.click("#audit-filter button")
            await admin.wait_for_function(
                "() => [...document.querySelectorAll('#audit-table tr[data-action]')]"
                ".map(r => r.dataset.action).join(',') === "
                "'user.disable,user.sessions.end,user.role,user.create'"
            )
            await admin.fill("#audit-filter input[name=action]", "")
            await admin.fill("#audit-filter input[name=user]", "nina")
            await admin.click("#audit-filter button")
            await admin.wait_for_function(
                "() => document.querySelector('#audit-table tr[data-action=login]') !== null"
            )
            assert admin.errors == []

            # A trader sees no user management, but makes an API token for a script.
            tom = await _logged_in(browser, scp, "tom", PASSWORDS["tom"])
            await tom.goto(f"{scp.url}/users")
            await tom.wait_for_function(
                "() => document.querySelector('#users-notice').textContent"
                ".includes('needs the admin role')"
            )
            assert not await tom.locator("#users").is_visible()
            await tom.fill("#new-token input[name=name]", "my script")
            await tom.click("#new-token button[type=submit]")
            await tom.wait_for_selector("#token-table tr[data-token]")
            token = await tom.locator("#token-secret-value").inner_text()
            assert token.startswith("mdp_")
            bearer = (
                "async (t) => (await fetch('/api/me', {credentials: 'omit',"
                " headers: {Authorization: `Bearer ${t}`}})).status"
            )
            assert await tom.evaluate(bearer, token) == 200
            await tom.click("#token-table button[data-act=revoke]")
            await tom.wait_for_selector("#token-table td:text('revoked')")
            assert await tom.evaluate(bearer, token) == 401
            assert tom.errors == []
        finally:
            await browser.close()
