"""seed_demo: demo data in every state, guarded by DEBUG and emptiness."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from backoffice.models import Conference, Order, OrderHistoryEntry, Payment
from backoffice.services.payment import OrderAction, allowed_actions, succeeded_total
from backoffice.services.payment.cancellation import HoldState, with_hold

pytestmark = pytest.mark.django_db


@pytest.fixture
def debug_on(settings):
    settings.DEBUG = True


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_fills_an_empty_database_with_orders_in_every_state(debug_on):
    output = seed()

    conference = Conference.objects.get()
    assert conference.currency == "USD"
    assert conference.contact_email == "registration@pycon-demo.example"
    assert not conference.stripe_secret_key
    orders = Order.objects.with_amounts()
    assert 30 <= orders.count() <= 60
    pending = orders.filter(status=Order.Status.PENDING)
    assert pending.filter(total=0).count() >= 3, "zero-total orders to comp"
    assert pending.filter(total__gt=0, paid_sum=0).exists(), "unpaid orders"
    partial = pending.filter(paid_sum__gt=0)
    assert partial.exists(), "partially paid orders"
    assert all(0 < o.paid_sum < o.total for o in partial)
    assert orders.filter(status=Order.Status.PAID, total__gt=0).exists()
    assert orders.filter(status=Order.Status.PAID, total=0).exists()
    assert orders.filter(status=Order.Status.CANCELLED).exists()
    assert all(o.line_items.exists() for o in orders)
    assert all(o.subtotal - o.discount_amount == o.total for o in orders)
    for order in orders.filter(status=Order.Status.PAID):
        assert succeeded_total(order) == order.total
    assert not Payment.objects.filter(created_by=None).exists()
    assert "PyCon Demo 2026" in output


def test_seed_demo_records_manual_payments_with_the_channel_they_were_made_through(debug_on):
    seed()

    manual = Payment.objects.filter(method=Payment.Method.MANUAL)
    channels = {
        prefix: set(manual.filter(reference__startswith=prefix).values_list("channel", flat=True))
        for prefix in ("CASH-", "WIRE-", "TERM-")
    }
    assert channels == {
        "CASH-": {Payment.Channel.CASH},
        "WIRE-": {Payment.Channel.BANK_TRANSFER},
        "TERM-": {Payment.Channel.CARD_TERMINAL},
    }
    assert not manual.exclude(reference__regex=r"^(CASH|WIRE|TERM)-").exists()
    assert not Payment.objects.exclude(method=Payment.Method.MANUAL).exclude(channel="").exists()


def test_seed_demo_creates_and_prints_the_demo_accounts(debug_on):
    output = seed()

    admin = authenticate(username="admin", password="demo-admin-pass")
    desk = authenticate(username="desk", password="demo-desk-pass")
    finance = authenticate(username="finance", password="demo-finance-pass")
    assert admin is not None and admin.is_superuser
    assert desk is not None and desk.is_staff and not desk.is_superuser
    assert desk.groups.filter(name="Front desk").exists()
    assert desk.has_perm("backoffice.record_manual_payment")
    assert finance is not None and finance.groups.filter(name="Finance").exists()
    for credential in ("admin", "demo-admin-pass", "desk", "demo-desk-pass", "demo-finance-pass"):
        assert credential in output


def test_seed_demo_if_empty_is_a_no_op_on_a_seeded_database(debug_on):
    seed()
    counts = (Order.objects.count(), Payment.objects.count(), get_user_model().objects.count())

    output = seed("--if-empty")

    assert "already has data" in output
    assert (Order.objects.count(), Payment.objects.count(), get_user_model().objects.count()) == (
        counts
    )


def test_seed_demo_refuses_a_database_that_has_data(debug_on, make_order):
    make_order("10.00")
    with pytest.raises(CommandError, match="not empty"):
        seed()
    assert Order.objects.count() == 1


def test_seed_demo_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        seed()
    assert not Order.objects.exists()
    assert not get_user_model().objects.exists()


def test_seed_demo_with_force_runs_without_debug_and_random_passwords(settings):
    settings.DEBUG = False

    output = seed("--force")

    assert Order.objects.exists()
    assert authenticate(username="admin", password="demo-admin-pass") is None
    assert "demo-admin-pass" not in output
    password = output.split("username: admin")[1].split("password: ")[1].split()[0]
    assert authenticate(username="admin", password=password) is not None


def test_seed_demo_has_expired_holds_to_cancel_and_cancels_through_the_service(debug_on):
    seed()

    expired = with_hold(Order.objects.all(), HoldState.EXPIRED)
    assert expired.count() >= 2, "a newcomer can try the Hold filter and the bulk cancel"
    assert all(allowed_actions(order)[OrderAction.CANCEL].allowed for order in expired)
    assert with_hold(Order.objects.all(), HoldState.ACTIVE).exists()
    cancelled = Order.objects.filter(status=Order.Status.CANCELLED)
    assert cancelled.exists()
    for order in cancelled:
        entry = order.history.get(action=OrderHistoryEntry.Action.CANCEL)
        assert entry.actor.username == "desk" and entry.message
        assert order.hold_expires_at is None
