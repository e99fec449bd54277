"""The first run: `make run`'s own start-up, then a newcomer pays the printed pay link by card.

scripts/run-dev.sh (all of `make run` after the install) runs as it is, on a fresh
SQLite file and a free port, in a pseudo-terminal like a developer's, so its Ctrl-C
is a real one, and the fake's log in a folder of its own. It migrates, seeds the
demo, starts localstripe, wires the demo conference to it and, once the worker has
printed the demo's e-mails, prints the links; the browser then pays in the local card
form, localstripe posts its signed webhook, and the admin shows the order paid.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import REPO_DIR, describe_violations, serious_axe_violations, site_page
from tests.e2e.test_staff_orders import exactly, order_field
from tests.stripe_fixtures import free_port
from tests.terminal import start_in_terminal

pytestmark = pytest.mark.e2e

# Migrating and seeding a fresh database on a busy 2-core machine takes a while.
START_UP_SECONDS = 240
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class FirstRun:
    """scripts/run-dev.sh running in a pseudo-terminal, and what it printed so far."""

    process: subprocess.Popen
    terminal: int
    url: str
    env: dict[str, str]
    stripe_log: Path
    output: bytearray = field(default_factory=bytearray)
    start_up: str = ""  # what it had printed when the links came

    @property
    def text(self) -> str:
        """The output so far, without colours."""
        return ANSI.sub("", self.output.decode(errors="replace"))

    def printed(self, label: str) -> str:
        """The value printed after a label of the start-up links (e.g. "Pay link:")."""
        return re.search(rf"^\s*{re.escape(label)}\s+(\S+)", self.text, re.MULTILINE).group(1)

    def processes(self) -> set[int]:
        """The script's process and all its descendants now."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found = {self.process.pid}
        while True:
            children = {pid for pid, parent in parents.items() if parent in found} - found
            if not children:
                return found
            found |= children

    def ctrl_c(self) -> int:
        """Type Ctrl-C in its terminal; the script's exit status."""
        os.write(self.terminal, b"\x03")
        return self.process.wait(timeout=60)


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_into(terminal: int, output: bytearray) -> None:
    """Keep reading the terminal (a full one would block the script)."""
    while True:
        try:
            data = os.read(terminal, 65536)
        except OSError:
            return
        if not data:
            return
        output.extend(data)


@pytest.fixture(scope="module")
def fresh_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DATABASE_URL of a new, empty database on the tests' kind of database.

    SQLite (`make run`'s default) in a temporary folder; when the tests run on
    PostgreSQL, a database of its own on that server (`make run` with DATABASE_URL),
    dropped afterwards.
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path_factory.mktemp('first-run-db') / 'backoffice.sqlite3'}"
        return
    parts = urllib.parse.urlsplit(url)
    name = f"first_run_{uuid.uuid4().hex[:12]}"
    server = parts._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, fresh_database: str) -> Iterator[FirstRun]:
    """`make run`'s script on a fresh database and a free port, until its links are printed."""
    stripe_log = tmp_path_factory.mktemp("first-run") / "localstripe.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "BACKOFFICE_", "STRIPE_", "PYTEST_", "DATABASE_"))
        and k != "LOCAL_STRIPE"
    }
    env.update(DJANGO_DEBUG="1", DATABASE_URL=fresh_database)  # as `make run` sets
    env["LOCAL_STRIPE_LOG"] = str(stripe_log)  # not var/localstripe.log: a `make run` may run
    port = free_port()
    process, terminal = start_in_terminal(
        ["sh", "scripts/run-dev.sh", sys.executable, f"127.0.0.1:{port}"], cwd=REPO_DIR, env=env
    )
    run = FirstRun(
        process=process,
        terminal=terminal,
        url=f"http://127.0.0.1:{port}",
        env=env,
        stripe_log=stripe_log,
    )
    threading.Thread(target=_read_into, args=(terminal, run.output), daemon=True).start()
    try:
        deadline = time.monotonic() + START_UP_SECONDS
        while "Logins:" not in run.text:
            assert process.poll() is None, f"run-dev.sh exited early:\n{run.text[-3000:]}"
            assert time.monotonic() < deadline, f"no links after start-up:\n{run.text[-3000:]}"
            time.sleep(0.5)
        time.sleep(1)  # the rest of the logins
        run.start_up = run.text
        yield run
    finally:
        if process.poll() is None:
            pids = run.processes()
            run.ctrl_c()
            for pid in pids:
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)
        os.close(terminal)


@pytest.fixture(scope="module")
def browser_context_args(first_run: FirstRun) -> dict:
    """Pages start at the first run's site (no live server in this module)."""
    return {
        "base_url": first_run.url,
        "viewport": {"width": 1280, "height": 900},
        "locale": "en-US",
        "timezone_id": "UTC",
    }


@pytest.fixture
def page(context, first_run: FirstRun) -> Iterator[Page]:
    """A page that may only reach the site and fails the test on any JavaScript error."""
    yield from site_page(context, first_run.url)


def fill_card(page: Page, number: str) -> None:
    """Type a test card into the local card form, as an attendee would."""
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiration date").fill("12 / 34")
    page.get_by_label("Security code").fill("123")


def test_make_run_prints_the_admin_a_pay_link_and_the_demo_logins(first_run: FirstRun) -> None:
    assert first_run.printed("Admin:") == f"{first_run.url}/admin/"
    assert re.fullmatch(rf"{first_run.url}/pay/[\w-]+/", first_run.printed("Pay link:"))
    assert "pay it with card 4242 4242 4242 4242" in first_run.text
    assert "admin / demo-admin-pass  (superuser)" in first_run.text
    assert "Fake Stripe server (localstripe) at http://127.0.0.1:" in first_run.text
    assert f"its log is {first_run.stripe_log}." in first_run.text
    assert "POST /_config/webhooks/backoffice-pycon-demo-2026" in first_run.stripe_log.read_text()


def test_the_links_come_after_the_demo_e_mails_the_worker_prints(first_run: FirstRun) -> None:
    links_at = first_run.start_up.index("Backoffice is running at")

    assert "Subject: PyCon Demo 2026: receipt for order" in first_run.start_up[:links_at]
    assert "Subject:" not in first_run.start_up[links_at:]
    assert "Done" not in first_run.start_up  # no job notice from the shell


def test_the_local_card_form_has_no_serious_accessibility_violations(
    page: Page, first_run: FirstRun, screenshot
) -> None:
    page.goto(first_run.printed("Pay link:"))

    expect(page.get_by_label("Card number")).to_be_visible()
    expect(page.locator("#payment-errors")).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile(r"^Pay \d"))).to_be_enabled()
    screenshot(page, "first-run-checkout")
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)


def test_the_newcomer_pays_the_printed_link_and_sees_the_order_paid_in_the_admin(
    page: Page, first_run: FirstRun, screenshot
) -> None:
    page.goto(first_run.printed("Pay link:"))
    reference = re.search(r"\((ORD-\w+), ", first_run.text).group(1)
    fill_card(page, "4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile(r"^Pay \d")).click()

    expect(page.locator("#paid-message")).to_have_text(re.compile("Paid"))
    expect(page.get_by_text(f"Order {reference} is paid")).to_be_visible()
    expect(page.locator("table.payments tbody tr").filter(has_text="Stripe")).to_have_count(1)
    screenshot(page, "first-run-paid")

    page.goto("/admin/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("demo-admin-pass")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/admin/backoffice/order/?q={reference}")
    page.locator("#result_list").get_by_role("link", name=reference).click()
    expect(order_field(page, "Status")).to_have_text(exactly("Paid"))
    expect(order_field(page, "Balance due")).to_have_text(exactly("0.00 USD"))
    screenshot(page, "first-run-order-paid")
    # Confirmed by localstripe's signed webhook too, not only by the return page.
    page.goto("/admin/backoffice/stripeevent/")
    expect(
        page.locator("#result_list tbody tr").filter(has_text="payment_intent.succeeded")
    ).to_have_count(1)


def test_a_declined_card_shows_the_decline_on_the_page(page: Page, first_run: FirstRun) -> None:
    # The printed order is paid by now: ask the same command for the next one.
    links = subprocess.run(
        [sys.executable, "manage.py", "show_demo_links", "--site-url", first_run.url],
        cwd=REPO_DIR,
        env=first_run.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pay_link = re.search(r"Pay link:\s+(\S+)", links).group(1)
    page.goto(pay_link)
    fill_card(page, "4000 0000 0000 0341")
    page.get_by_role("button", name=re.compile(r"^Pay \d")).click()

    expect(page.locator("#payment-errors")).to_have_text("Your card was declined.")
    expect(page).to_have_url(pay_link)
    expect(page.get_by_role("button", name=re.compile(r"^Pay \d"))).to_be_enabled()


def test_ctrl_c_stops_the_site_the_worker_and_the_fake_stripe(first_run: FirstRun) -> None:
    fake_port = int(re.search(r"localstripe\) at http://127\.0\.0\.1:(\d+)", first_run.text)[1])
    processes = first_run.processes()
    assert len(processes) >= 5, "script, server, worker loop, worker, localstripe"

    assert first_run.ctrl_c() == 130
    time.sleep(1)

    assert [pid for pid in processes if _running(pid)] == []
    for port in (fake_port, int(first_run.url.rsplit(":", 1)[1])):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
