"""Browser-test fixtures: Debian's Chromium, driven by Playwright, against the live server.

Playwright's own browser download cannot work on our machines, so the tests launch the
Chromium that `apt-get install chromium` puts on the PATH. Without one, the tests are
skipped on a developer's machine with one line saying how to install it, and fail in CI.
"""

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from playwright.sync_api import Browser, BrowserType, Page, Playwright, Route, sync_playwright

E2E_DIR = Path(__file__).resolve().parent
REPO_DIR = E2E_DIR.parents[1]
SCREENSHOT_DIR = REPO_DIR / "artifacts" / "screenshots"
AXE_JS = E2E_DIR / "vendor" / "axe.min.js"

CHROMIUM_MISSING = (
    "Chromium not found on PATH: install it with `sudo apt-get install chromium` "
    "to run the browser tests (tests/e2e)."
)
# Keep headless Chromium off the network and quiet: no updates, no first-run UI, no GPU.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
]


def find_chromium() -> str | None:
    """Return the path of the system Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def running_in_ci() -> bool:
    """Whether CI=true (or 1/yes) is set, as `.ci/run` does."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


if find_chromium() is None and not running_in_ci():
    # Skipping here skips the whole package and reports it on one line.
    pytest.skip(CHROMIUM_MISSING, allow_module_level=True)


@pytest.fixture(scope="package", autouse=True)
def _django_orm_beside_playwright() -> Iterator[None]:
    """Let tests use the ORM while Playwright's sync API keeps an event loop in this thread.

    Playwright marks the test thread's asyncio loop as running between its calls, and
    Django refuses ORM calls from a thread with a running loop. Django's documented
    switch for this is DJANGO_ALLOW_ASYNC_UNSAFE; it is set for this package only.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian's Chromium by its path; in CI a missing Chromium fails every browser test."""
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(f"CI=true and {CHROMIUM_MISSING}", pytrace=False)
    args = list(CHROMIUM_ARGS)
    if os.geteuid() == 0:
        args.insert(0, "--no-sandbox")  # Chromium's sandbox refuses to run as root.
    return {**browser_type_launch_args, "executable_path": chromium, "args": args}


# pytest-playwright's playwright/browser fixtures are session-scoped: its event loop
# would stay "running" in this thread for every test collected after these. They are
# package-scoped here so Playwright stops when the browser tests are done.
@pytest.fixture(scope="package")
def playwright(browser_type_launch_args: dict) -> Iterator[Playwright]:
    """Playwright's sync API for the browser tests only."""
    pw = sync_playwright().start()
    yield pw
    pw.stop()


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    """The browser type chosen with --browser (chromium)."""
    return getattr(playwright, browser_name)


@pytest.fixture(scope="package")
def browser(browser_type: BrowserType, browser_type_launch_args: dict) -> Iterator[Browser]:
    """One Chromium for the whole package."""
    browser = browser_type.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def browser_context_args(live_server) -> dict:
    """Every page starts at the live server, on a laptop-sized window."""
    return {
        "base_url": live_server.url,
        "viewport": {"width": 1280, "height": 900},
        "locale": "en-US",
        "timezone_id": "UTC",
    }


@pytest.fixture
def page(context, live_server) -> Iterator[Page]:
    """A page that may only reach the live server and fails the test on any JavaScript error."""
    errors: list[str] = []

    def only_live_server(route: Route) -> None:
        if route.request.url.startswith(live_server.url):
            route.fallback()
        else:
            route.abort("blockedbyclient")

    context.route("**/*", only_live_server)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def login(context, live_server) -> Callable[[AbstractBaseUser], None]:
    """Log the browser in as a user without going through the form (the login test does that)."""

    def log_in(user: AbstractBaseUser) -> None:
        client = Client()
        client.force_login(user)
        context.clear_cookies()
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                }
            ]
        )

    return log_in


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    """Save a full-page screenshot under artifacts/screenshots/ (git-ignored)."""

    def save(page: Page, name: str) -> Path:
        # Wait for deferred scripts (unfold's Alpine renders late) and web fonts.
        page.wait_for_load_state("networkidle")
        page.evaluate("async () => { await document.fonts.ready; }")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def serious_axe_violations(page: Page) -> list[dict]:
    """Run axe-core on the page and return its serious and critical violations."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in {"serious", "critical"}]


def describe_violations(violations: list[dict]) -> str:
    """Format axe violations for an assertion message."""
    return json.dumps(
        [
            {
                "rule": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"]],
            }
            for v in violations
        ],
        indent=2,
    )
