"""Browser-test fixtures: Debian's Chromium, driven by Playwright, against the live server.

Playwright's own browser download cannot work on our machines, so the tests launch the
Chromium that `apt-get install chromium` puts on the PATH. Without one, the tests are
skipped on a developer's machine with one line saying how to install it, and fail in CI.
"""

import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import (
    Browser,
    BrowserType,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from tests.stripe_fixtures import LocalStripe, start_localstripe

E2E_DIR = Path(__file__).resolve().parent
REPO_DIR = E2E_DIR.parents[1]
SCREENSHOT_DIR = REPO_DIR / "artifacts" / "screenshots"
AXE_JS = E2E_DIR / "vendor" / "axe.min.js"

CHROMIUM_MISSING = (
    "Chromium not found on PATH: install it with `sudo apt-get install chromium` "
    "to run the browser tests (tests/e2e)."
)
# Generous waits: on a 2-core machine shared with other test runs a page can take a
# few seconds; a real failure still fails, only later.
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium on a developer's machine, skip the browser tests (marker e2e)."""
    if find_chromium() is not None or running_in_ci():
        return
    skip = pytest.mark.skip(reason=CHROMIUM_MISSING)
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Report every "no Chromium" skip at one place, so pytest folds them into one line."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if reason.endswith(CHROMIUM_MISSING):
            report.longrepr = (__file__, None, reason)


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


def site_page(context, site_url: str) -> Iterator[Page]:
    """A page that may only reach ``site_url`` and fails the test on any JavaScript error."""
    errors: list[str] = []

    def only_the_site(route: Route) -> None:
        if route.request.url.startswith(site_url):
            route.fallback()
        else:
            route.abort("blockedbyclient")

    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", only_the_site)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(context, live_server) -> Iterator[Page]:
    """A page that may only reach the live server and fails the test on any JavaScript error."""
    yield from site_page(context, live_server.url)


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


def make_staff(
    username: str, *, full_name: str, group: str | None = None, permissions: tuple[str, ...] = ()
) -> AbstractBaseUser:
    """Create a staff member in a group made by `create_staff_groups`, or with permissions."""
    first_name, last_name = full_name.split(" ", 1)
    user = get_user_model().objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password=f"{username}-pass-123",
        is_staff=True,
        first_name=first_name,
        last_name=last_name,
    )
    if group:
        call_command("create_staff_groups", stdout=io.StringIO())
        user.groups.add(Group.objects.get(name=group))
    if permissions:
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="backoffice", codename__in=permissions
            )
        )
    return user


@pytest.fixture
def front_desk_user(db) -> AbstractBaseUser:
    """A member of the "Front desk" group: views orders, records manual payments, marks comp."""
    return make_staff("dana", full_name="Dana Desk", group="Front desk")


@pytest.fixture
def finance_user(db) -> AbstractBaseUser:
    """A member of the "Finance" group: views orders and payments, exports payments."""
    return make_staff("fiona", full_name="Fiona Finance", group="Finance")


@pytest.fixture
def view_only_user(db) -> AbstractBaseUser:
    """Desk staff who may look at orders but hold neither payment permission."""
    return make_staff("victor", full_name="Victor Viewer", permissions=("view_order",))


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    """Save a screenshot of the whole page under artifacts/screenshots/ (git-ignored)."""

    def save(page: Page, name: str) -> Path:
        # Wait for deferred scripts (unfold's Alpine renders late) and web fonts.
        page.wait_for_load_state("networkidle")
        page.evaluate("async () => { await document.fonts.ready; }")
        # Grow the window to the page's height rather than stitching a full-page
        # capture: fixed footers and modal dialogs then sit where a person sees them.
        size = page.viewport_size or {"width": 1280, "height": 900}
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        page.set_viewport_size(size)
        return path

    return save


def serious_axe_violations(page: Page) -> list[dict]:
    """Run axe-core on the page and return its serious and critical violations."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol rather than added as a <script> tag:
        # the site's Content-Security-Policy (rightly) blocks inline scripts.
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;undefined")
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


@pytest.fixture(scope="package")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """A localstripe server of the browser tests' own.

    The session-wide one also serves the other Stripe tests, whose events localstripe
    posts a second later to every webhook registered by then: one of them reaching a
    browser test's live server would be a payment for an order it never had.
    """
    with start_localstripe(tmp_path_factory.mktemp("localstripe-e2e")) as server:
        yield server
