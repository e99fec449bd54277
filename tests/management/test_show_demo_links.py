"""show_demo_links: the admin, a demo order's pay link and the demo logins, once the site is up."""

import re
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from backoffice.models import Order
from backoffice.services.worker_liveness import beat
from tests.stripe_fixtures import free_port
from tests.worker import run_queued_tasks

pytestmark = pytest.mark.django_db

SITE = "http://127.0.0.1:8123"


@pytest.fixture
def seeded(settings) -> None:
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())


def show(*args: str) -> str:
    out = StringIO()
    call_command("show_demo_links", "--site-url", SITE, *args, stdout=out)
    return out.getvalue()


def test_prints_the_admin_a_payable_demo_order_and_the_demo_logins(seeded, settings) -> None:
    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"  # make run's fake: the card to use

    output = show()

    assert f"Admin:     {SITE}/admin/" in output
    token = re.search(rf"Pay link:  {SITE}/pay/([\w-]+)/", output).group(1)
    order = Order.objects.with_amounts().get(payment_token=token)
    assert order.status == Order.Status.PENDING
    assert order.balance_due > Decimal("0")
    assert f"({order.reference}, {order.format(order.balance_due)} due: pay it with card " in output
    assert "4242 4242 4242 4242" in output
    assert "admin / demo-admin-pass  (superuser)" in output
    assert "desk / demo-desk-pass  (Front desk)" in output
    assert "finance / demo-finance-pass  (Finance)" in output


def test_does_not_print_a_password_that_was_changed(seeded) -> None:
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("something-private-42")
    admin.save()

    output = show()

    assert "demo-admin-pass" not in output
    assert "something-private-42" not in output
    assert "desk / demo-desk-pass" in output


def test_without_the_fake_stripe_the_pay_link_names_no_test_card(seeded, settings) -> None:
    settings.STRIPE_API_BASE = ""

    output = show()

    assert "Pay link:" in output
    assert "4242" not in output


def test_without_demo_data_only_the_admin_is_printed(db) -> None:
    output = show()

    assert f"Admin:     {SITE}/admin/" in output
    assert "Pay link:" not in output
    assert "Logins:" not in output


def test_gives_up_when_the_site_does_not_answer(seeded) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    out = StringIO()

    with pytest.raises(CommandError, match="did not answer within 1 s"):
        call_command("show_demo_links", "--site-url", closed, "--wait", "1", stdout=out)


def test_with_the_queue_emptied_by_a_live_worker_it_prints_without_waiting(seeded) -> None:
    beat("make-run-worker")
    assert run_queued_tasks() > 0  # the demo's receipts and cancellations, printed by the worker
    started = time.monotonic()

    output = show("--wait-for-worker", "60")

    assert time.monotonic() - started < 10
    assert "Logins:" in output


def test_waits_for_the_worker_at_most_as_long_as_asked_then_prints_anyway(seeded) -> None:
    started = time.monotonic()  # the demo's e-mails are queued, and no worker runs

    output = show("--wait-for-worker", "1.5")

    assert time.monotonic() - started >= 1.5
    assert "Pay link:" in output
