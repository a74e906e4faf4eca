"""The dashboard's browser tests share this: Debian's Chromium driven headless by Playwright (one browser per
test module; each test opens its own pages), signing in with a token, and screenshots in build/screenshots/
(CI keeps them as artifacts)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.e2e.server import AidcServer
from tests.fixtures.common import unavailable

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
_ERRORS: dict[int, list[str]] = {}  # console errors per page (by id), recorded from sign-in on


def launch() -> Iterator[Any]:
    """Yields a headless Chromium; skips (failing where CI is set) without playwright or chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        unavailable("Debian's chromium is not installed (scripts/install-test-deps.sh installs it)")
    executable = str(CHROMIUM) if CHROMIUM.exists() else str(shutil.which("chromium"))
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def sign_in(browser: Any, server: AidcServer, token: str, then: str = "/") -> Any:
    """A new page signed in with `token` (through the sign-in form), at `then`."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    _ERRORS[id(page)] = errors
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + "/")
    assert page.url.endswith("/login")  # not signed in: the sign-in page
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
    if then != "/":
        page.goto(server.url + then)
    return page


def console_errors(page: Any) -> list[str]:
    """What the page's console reported as errors since sign-in (CSP refusals and script errors show here).
    A cancelled or refused API call that the page handled is not one (the page shows it instead)."""
    return [e for e in _ERRORS.get(id(page), []) if "Failed to load resource" not in e]


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
