"""PaymentService.refund against localstripe, and the refunds Stripe reports, applied once."""

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from backoffice.exports import PaymentResource
from backoffice.models import Order, OrderHistoryEntry, Payment, Refund
from backoffice.services.dashboard import revenue_by_conference_and_method
from backoffice.services.exports import payments_for_export, stream_csv
from backoffice.services.payment import (
    OrderAction,
    PaymentService,
    allowed_actions,
    apply_charge_refund,
    apply_payment_intent,
    apply_refund_answer,
    apply_stripe_refund,
)
from backoffice.services.payment.ledger import refundable_payments, refundable_rest
from backoffice.services.payment.refunds import UNANSWERED_NOTE
from backoffice.stripe_client import parse_charge, parse_payment_intent, parse_refund
from tests.ledger_factories import make_refund
from tests.races import outcome, run_at_once
from tests.services.test_exports import amounts_collected
from tests.stripe_fixtures import pay_by_card, start_localstripe, succeeded_intent

pytestmark = pytest.mark.django_db
S = Order.Status
Action = OrderHistoryEntry.Action
LEGACY_NOTE = "Recorded before refunds were itemised"


def entries(order: Order) -> list[OrderHistoryEntry]:
    """The order's history, oldest first."""
    return list(OrderHistoryEntry.objects.filter(order=order).order_by("created_at", "id"))


def stripe_refunds(localstripe, payment: Payment) -> list[dict]:
    """The refunds localstripe holds for a payment's intent."""
    return localstripe.list_all("/v1/refunds", payment_intent=payment.stripe_payment_intent_id)


@pytest.fixture
def card_payment(stripe_conference, make_order, localstripe) -> Payment:
    """A 100.00 order paid in full by card through localstripe (the return page applied it)."""
    return pay_by_card(make_order("100.00", conference=stripe_conference), localstripe)


@pytest.fixture
def cash_payment(make_order, staff_user) -> Payment:
    """A 100.00 order paid in full in cash at the desk."""
    order = make_order("100.00")
    return PaymentService.record_manual(order, amount=Decimal("100.00"), staff_user=staff_user)


def refund_40_without_answer(payment: Payment, staff_user) -> Refund:
    """Refund 40.00 of a card payment while Stripe gives no answer: refused, kept pending."""
    with pytest.raises(ValidationError, match="Stripe did not answer"):
        PaymentService.refund(
            payment, amount="40.00", reason=Refund.Reason.OTHER, staff_user=staff_user
        )
    [row] = Refund.objects.filter(payment=payment)
    assert row.status == Refund.Status.PENDING
    assert UNANSWERED_NOTE in row.note
    payment.refresh_from_db()
    assert refundable_rest(payment) == Decimal("60.00")  # the pending row still holds 40.00
    return row


# --- Card refunds through Stripe ------------------------------------------------


def test_full_refund_of_a_card_payment_goes_through_stripe(card_payment, staff_user, localstripe):
    refund = PaymentService.refund(
        card_payment,
        amount=Decimal("100.00"),
        reason=Refund.Reason.EVENT_CANCELLED,
        staff_user=staff_user,
    )

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.created_by == staff_user
    [at_stripe] = stripe_refunds(localstripe, card_payment)
    assert refund.stripe_refund_id == at_stripe["id"]
    assert at_stripe["amount"] == 10000
    assert at_stripe["metadata"]["refund_id"] == str(refund.pk)
    assert at_stripe["metadata"]["reason"] == "event_cancelled"
    assert at_stripe["metadata"]["order_id"] == str(card_payment.order_id)
    card_payment.refresh_from_db()
    assert card_payment.status == Payment.Status.REFUNDED
    assert card_payment.refunded_amount == Decimal("100.00")
    order = card_payment.order
    order.refresh_from_db()
    assert order.status == S.REFUNDED
    last = entries(order)[-1]
    assert (last.action, last.actor, last.amount) == (Action.REFUND, staff_user, Decimal("100.00"))
    assert (last.status_before, last.status_after) == (S.PAID, S.REFUNDED)
    assert not allowed_actions(order)[OrderAction.REFUND].allowed


def test_partial_refunds_of_a_card_payment_add_up(card_payment, staff_user, localstripe):
    PaymentService.refund(
        card_payment, amount="30.00", reason=Refund.Reason.OTHER, staff_user=staff_user
    )

    card_payment.refresh_from_db()
    order = Order.objects.get(pk=card_payment.order_id)
    assert (card_payment.status, card_payment.refunded_amount) == (
        Payment.Status.SUCCEEDED,
        Decimal("30.00"),
    )
    assert order.status == S.PARTIALLY_REFUNDED
    assert allowed_actions(order)[OrderAction.REFUND].allowed

    PaymentService.refund(
        card_payment, amount="70.00", reason=Refund.Reason.OTHER, staff_user=staff_user
    )

    card_payment.refresh_from_db()
    assert card_payment.status == Payment.Status.REFUNDED
    assert card_payment.refunded_amount == Decimal("100.00")
    assert sorted(r["amount"] for r in stripe_refunds(localstripe, card_payment)) == [3000, 7000]
    assert Order.objects.get(pk=order.pk).status == S.REFUNDED


def test_stripe_unreachable_keeps_the_refund_pending_until_the_clerk_retries(
    card_payment, staff_user, settings, tmp_path, localstripe
):
    """Stripe never got the request: the row holds its amount; the retry refunds once."""
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url
    # The server is stopped: its port is closed now.

    refund = refund_40_without_answer(card_payment, staff_user)

    assert card_payment.refunded_amount == 0
    assert Order.objects.get(pk=card_payment.order_id).status == S.PAID
    assert stripe_refunds(localstripe, card_payment) == []

    settings.STRIPE_API_BASE = localstripe.url  # Stripe is back
    again = PaymentService.refund(
        card_payment, amount="40.00", reason=Refund.Reason.OTHER, staff_user=staff_user
    )

    assert again.pk == refund.pk
    assert again.status == Refund.Status.SUCCEEDED
    assert [r["amount"] for r in stripe_refunds(localstripe, card_payment)] == [4000]
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("40.00")


def test_a_refund_stripe_made_after_all_settles_the_unanswered_row(
    card_payment, staff_user, settings, tmp_path, localstripe
):
    """The call timed out but Stripe refunded: its webhook names our row; no second row."""
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url
    with pytest.raises(ValidationError):
        PaymentService.refund(
            card_payment, amount="40.00", reason=Refund.Reason.OTHER, staff_user=staff_user
        )
    row = Refund.objects.get(payment=card_payment)
    made = localstripe.api(
        "POST",
        "/v1/refunds",
        payment_intent=card_payment.stripe_payment_intent_id,
        amount=4000,
        **{"metadata[refund_id]": str(row.pk)},
    )

    apply_stripe_refund(card_payment.order.conference, parse_refund(made))

    row.refresh_from_db()
    assert (row.status, row.stripe_refund_id) == (Refund.Status.SUCCEEDED, made["id"])
    assert Refund.objects.filter(payment=card_payment).count() == 1
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("40.00")


def test_a_webhook_beating_the_api_answer_is_one_refund(card_payment, staff_user, localstripe):
    """Step one of the service committed its pending row; the webhook arrives before the answer."""
    row = Refund.objects.create(
        payment=card_payment,
        amount=Decimal("25.00"),
        reason=Refund.Reason.OTHER,
        created_by=staff_user,
    )
    answer = localstripe.api(
        "POST",
        "/v1/refunds",
        payment_intent=card_payment.stripe_payment_intent_id,
        amount=2500,
        **{"metadata[refund_id]": str(row.pk)},
    )
    conference = card_payment.order.conference

    apply_stripe_refund(conference, parse_refund(answer))  # the webhook first
    apply_refund_answer(row, parse_refund(answer), actor=staff_user)  # then the API's answer
    apply_stripe_refund(conference, parse_refund(answer | {"status": "pending"}))  # stale

    [refund] = Refund.objects.filter(payment=card_payment)
    assert (refund.status, refund.stripe_refund_id) == (Refund.Status.SUCCEEDED, answer["id"])
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("25.00")
    assert [e.action for e in entries(card_payment.order)].count(Action.REFUND) == 1


# --- Manual refunds --------------------------------------------------------------


def test_a_manual_refund_succeeds_at_once_with_its_channel(cash_payment, staff_user):
    refund = PaymentService.refund(
        cash_payment,
        amount="40.00",
        reason=Refund.Reason.REQUESTED_BY_CUSTOMER,
        note="Handed back at the desk",
        staff_user=staff_user,
        channel=Payment.Channel.CASH,
    )

    assert (refund.status, refund.channel) == (Refund.Status.SUCCEEDED, Payment.Channel.CASH)
    assert refund.stripe_refund_id == ""
    assert cash_payment.refunded_amount == Decimal("40.00")  # the caller's copy too
    order = Order.objects.get(pk=cash_payment.order_id)
    assert order.status == S.PARTIALLY_REFUNDED
    last = entries(order)[-1]
    assert (last.action, last.actor) == (Action.REFUND, staff_user)
    assert "paid back by cash" in last.message


def test_a_manual_refund_defaults_to_the_payments_channel(cash_payment, staff_user):
    Payment.objects.filter(pk=cash_payment.pk).update(channel=Payment.Channel.BANK_TRANSFER)

    refund = PaymentService.refund(
        cash_payment, amount="100.00", reason=Refund.Reason.OTHER, staff_user=staff_user
    )

    assert refund.channel == Payment.Channel.BANK_TRANSFER
    cash_payment.refresh_from_db()
    assert cash_payment.status == Payment.Status.REFUNDED
    assert Order.objects.get(pk=cash_payment.order_id).status == S.REFUNDED


# --- Refusals: nothing saved, nothing sent --------------------------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "The refund amount must be greater than zero."),
        ("-5.00", "The refund amount must be greater than zero."),
        ("abc", "Enter a valid amount"),
        (12.5, "exact decimal number"),
        ("10.001", "at most 2 decimal places"),
        ("100.01", "more than the 100.00 USD left to refund"),
    ],
)
def test_refund_refuses_bad_amounts(card_payment, staff_user, localstripe, amount, message):
    with pytest.raises(ValidationError, match=message):
        PaymentService.refund(
            card_payment, amount=amount, reason=Refund.Reason.OTHER, staff_user=staff_user
        )

    assert not Refund.objects.exists()
    assert stripe_refunds(localstripe, card_payment) == []


def test_refund_refuses_an_unknown_reason(cash_payment):
    with pytest.raises(ValidationError, match="Choose a refund reason"):
        PaymentService.refund(cash_payment, amount="10.00", reason="because")
    assert not Refund.objects.exists()


def test_refund_refuses_an_unknown_channel(cash_payment):
    with pytest.raises(ValidationError, match="Choose how the money went back"):
        PaymentService.refund(cash_payment, amount="10.00", reason="other", channel="barter")
    assert not Refund.objects.exists()


def test_refund_refuses_a_comp_payment(make_order):
    order = make_order("0.00")
    comp = PaymentService.record_comp(order)

    with pytest.raises(ValidationError, match="complimentary payment took no money"):
        PaymentService.refund(comp, amount="1.00", reason=Refund.Reason.OTHER)
    assert not Refund.objects.exists()


def test_refund_refuses_a_payment_that_did_not_succeed(stripe_conference, make_order, localstripe):
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.initiate_payment(order)
    attempt = Payment.objects.get(order=order)

    with pytest.raises(ValidationError, match="This payment is pending; only succeeded"):
        PaymentService.refund(attempt, amount="10.00", reason=Refund.Reason.OTHER)
    assert not Refund.objects.exists()
    sent = [refund["payment_intent"] for refund in localstripe.list_all("/v1/refunds")]
    assert attempt.stripe_payment_intent_id not in sent


def test_pending_refunds_count_against_the_rest(card_payment, localstripe):
    """A refund pending at Stripe (reported by its dashboard) holds its amount."""
    made = localstripe.api(
        "POST", "/v1/refunds", payment_intent=card_payment.stripe_payment_intent_id, amount=6000
    )
    apply_stripe_refund(card_payment.order.conference, parse_refund(made | {"status": "pending"}))

    with pytest.raises(ValidationError, match="more than the 40.00 USD left to refund"):
        PaymentService.refund(card_payment, amount="40.01", reason=Refund.Reason.OTHER)

    assert Refund.objects.filter(payment=card_payment).count() == 1


def test_a_refunded_payment_is_refused(cash_payment):
    PaymentService.refund(cash_payment, amount="100.00", reason=Refund.Reason.OTHER)

    with pytest.raises(ValidationError, match="This payment is refunded"):
        PaymentService.refund(cash_payment, amount="1.00", reason=Refund.Reason.OTHER)


# --- Overpayment ------------------------------------------------------------------


def test_refunding_exactly_an_overpayment_keeps_paid_and_clears_the_flag(card_payment, staff_user):
    """Paid by card, then 30.00 more arrived: giving back exactly 30.00 leaves it paid."""
    order = Order.objects.get(pk=card_payment.order_id)
    again = succeeded_intent(order, "pi_again", amount=3000, amount_received=3000)
    apply_payment_intent(order.conference, parse_payment_intent(again), Payment.Status.SUCCEEDED)
    order.refresh_from_db()
    assert order.needs_attention
    assert order.attention_reason.startswith("Overpaid")

    PaymentService.refund(
        card_payment, amount="30.00", reason=Refund.Reason.DUPLICATE, staff_user=staff_user
    )

    order.refresh_from_db()
    assert order.status == S.PAID
    assert not order.needs_attention
    assert order.attention_reason == ""


def test_a_partial_refund_of_an_overpayment_keeps_the_flag(cash_payment, conference):
    order = Order.objects.get(pk=cash_payment.order_id)
    again = succeeded_intent(order, "pi_again", amount=3000, amount_received=3000)
    apply_payment_intent(conference, parse_payment_intent(again), Payment.Status.SUCCEEDED)

    PaymentService.refund(cash_payment, amount="10.00", reason=Refund.Reason.DUPLICATE)

    order.refresh_from_db()
    assert order.status == S.PAID
    assert order.needs_attention  # 20.00 is still to give back


# --- Refunds Stripe reports --------------------------------------------------------


def test_a_dashboard_refund_reported_twice_and_out_of_order_is_one_row(card_payment, localstripe):
    made = localstripe.api(
        "POST", "/v1/refunds", payment_intent=card_payment.stripe_payment_intent_id, amount=2000
    )
    conference = card_payment.order.conference
    succeeded = parse_refund(made)
    pending = parse_refund(made | {"status": "pending"})

    for reported in (succeeded, pending, succeeded, pending):  # updated before created, twice
        apply_stripe_refund(conference, reported)

    [refund] = Refund.objects.filter(payment=card_payment)
    assert (refund.status, refund.stripe_refund_id) == (Refund.Status.SUCCEEDED, made["id"])
    assert refund.created_by is None
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("20.00")
    order = Order.objects.get(pk=card_payment.order_id)
    assert order.status == S.PARTIALLY_REFUNDED
    [entry] = [e for e in entries(order) if e.action == Action.REFUND]
    assert entry.actor_name == "Stripe"


def test_a_charge_refunded_without_a_list_is_not_counted_twice(
    card_payment, staff_user, localstripe
):
    """Our refund, then charge.refunded (total only), then the refund's own event."""
    refund = PaymentService.refund(
        card_payment, amount="30.00", reason="other", staff_user=staff_user
    )
    refund.refresh_from_db()
    charge = localstripe.api("GET", f"/v1/charges/{card_payment.stripe_charge_id}")
    conference = card_payment.order.conference

    apply_charge_refund(conference, parse_charge(charge | {"refunds": None}))
    made = localstripe.api("GET", f"/v1/refunds/{refund.stripe_refund_id}")
    apply_stripe_refund(conference, parse_refund(made))

    assert Refund.objects.filter(payment=card_payment).count() == 1
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("30.00")


def test_a_charge_refunded_with_its_list_updates_our_rows(card_payment, staff_user, localstripe):
    PaymentService.refund(card_payment, amount="30.00", reason="other", staff_user=staff_user)
    dashboard = localstripe.api(
        "POST", "/v1/refunds", payment_intent=card_payment.stripe_payment_intent_id, amount=1000
    )
    charge = localstripe.api("GET", f"/v1/charges/{card_payment.stripe_charge_id}")
    assert len(charge["refunds"]["data"]) == 2
    conference = card_payment.order.conference

    apply_charge_refund(conference, parse_charge(charge))
    apply_charge_refund(conference, parse_charge(charge))  # delivered twice

    rows = Refund.objects.filter(payment=card_payment)
    assert sorted(rows.values_list("amount", flat=True)) == [Decimal("10.00"), Decimal("30.00")]
    assert rows.get(amount=Decimal("10.00")).stripe_refund_id == dashboard["id"]
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("40.00")


def test_a_legacy_refund_is_claimed_not_duplicated(card_payment, localstripe):
    """Migration 0009 itemised refunded_amount as one row without a Stripe id."""
    made = localstripe.api(
        "POST", "/v1/refunds", payment_intent=card_payment.stripe_payment_intent_id, amount=1500
    )
    legacy = make_refund(card_payment, "15.00", reason=Refund.Reason.OTHER, note=LEGACY_NOTE)

    apply_stripe_refund(card_payment.order.conference, parse_refund(made))

    [refund] = Refund.objects.filter(payment=card_payment)
    assert refund.pk == legacy.pk
    assert refund.stripe_refund_id == made["id"]
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("15.00")


# --- Finance ------------------------------------------------------------------------


def test_export_sums_to_the_dashboards_net_after_service_refunds(
    card_payment, stripe_conference, make_order, staff_user
):
    PaymentService.refund(card_payment, amount="100.00", reason="other", staff_user=staff_user)
    cash = PaymentService.record_manual(
        make_order("80.00", conference=stripe_conference), amount=Decimal("80.00")
    )
    PaymentService.refund(cash, amount="25.00", reason="other", staff_user=staff_user)

    net = sum(
        (row.net for row in revenue_by_conference_and_method() if row.conference == "StripeCon"),
        Decimal("0.00"),
    )
    assert net == Decimal("55.00")
    queryset = payments_for_export(conference_slug="stripecon")
    assert amounts_collected(b"".join(stream_csv(PaymentResource(), queryset))) == net


def test_a_charge_total_arriving_before_the_api_answer_settles_our_pending_row(
    card_payment, staff_user, localstripe
):
    """charge.refunded (total only) beats the answer: our pending row is the refund it counts."""
    row = Refund.objects.create(
        payment=card_payment, amount=Decimal("25.00"), reason="other", created_by=staff_user
    )
    answer = localstripe.api(
        "POST",
        "/v1/refunds",
        payment_intent=card_payment.stripe_payment_intent_id,
        amount=2500,
        **{"metadata[refund_id]": str(row.pk)},
    )
    charge = localstripe.api("GET", f"/v1/charges/{card_payment.stripe_charge_id}")

    apply_charge_refund(card_payment.order.conference, parse_charge(charge | {"refunds": None}))
    apply_refund_answer(row, parse_refund(answer), actor=staff_user)

    [refund] = Refund.objects.filter(payment=card_payment)
    assert (refund.status, refund.stripe_refund_id) == (Refund.Status.SUCCEEDED, answer["id"])
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("25.00")


# --- Two clerks at once (PostgreSQL row locks) ------------------------------------------

THREADS = 6


def race(clerks: int, refund_once) -> list[str]:
    """Run ``refund_once`` in ``clerks`` threads released together; 'ok' or 'refused' each."""
    return sorted(outcome(result) for result in run_at_once([refund_once] * clerks))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_clerks_refunding_a_cash_payment_at_once_never_refund_more_than_it_holds(make_order):
    if connection.vendor != "postgresql":
        pytest.skip("row-lock race test needs PostgreSQL (SQLite serialises all writers)")
    order = make_order("100.00")
    payment = PaymentService.record_manual(order, amount=Decimal("100.00"))

    outcomes = race(
        THREADS,
        lambda: PaymentService.refund(
            Payment.objects.get(pk=payment.pk), amount="40.00", reason=Refund.Reason.OTHER
        ),
    )

    assert outcomes == ["ok", "ok"] + ["refused"] * (THREADS - 2)  # 40 + 40 fit, 120 would not
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("80.00")
    assert Refund.objects.filter(payment=payment).count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_clerks_refunding_a_card_payment_at_once_send_stripe_one_refund(
    stripe_conference, make_order, localstripe
):
    if connection.vendor != "postgresql":
        pytest.skip("row-lock race test needs PostgreSQL (SQLite serialises all writers)")
    payment = pay_by_card(make_order("100.00", conference=stripe_conference), localstripe)

    outcomes = race(
        THREADS,
        lambda: PaymentService.refund(
            Payment.objects.get(pk=payment.pk), amount="100.00", reason=Refund.Reason.OTHER
        ),
    )

    assert outcomes == ["ok"] + ["refused"] * (THREADS - 1)
    assert [r["amount"] for r in stripe_refunds(localstripe, payment)] == [10000]
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (Payment.Status.REFUNDED, Decimal("100"))


def test_a_refund_stripe_refuses_is_failed_and_explained(card_payment, staff_user):
    """E.g. the conference moved to another Stripe account: Stripe knows no such payment."""
    Payment.objects.filter(pk=card_payment.pk).update(stripe_payment_intent_id="pi_elsewhere")

    with pytest.raises(ValidationError, match="Stripe could not refund the payment") as refused:
        PaymentService.refund(card_payment, amount="10.00", reason="other", staff_user=staff_user)

    assert "Nothing was refunded." in refused.value.messages[0]
    [refund] = Refund.objects.filter(payment=card_payment)
    assert refund.status == Refund.Status.FAILED
    assert "Nothing was refunded." in refund.note
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == 0


def test_a_card_refund_without_stripe_keys_is_refused_before_anything_is_saved(
    conference, make_order
):
    """A card payment Stripe reported to a conference whose secret key was removed since."""
    order = make_order("100.00")
    intent = parse_payment_intent(succeeded_intent(order, "pi_keyless"))
    payment = apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)

    with pytest.raises(ValidationError, match="has no Stripe secret key"):
        PaymentService.refund(payment, amount="10.00", reason=Refund.Reason.OTHER)

    assert not Refund.objects.exists()


# --- A refund whose answer was lost ----------------------------------------------


class _StripeIdempotencyProxy(ThreadingHTTPServer):
    """Stripe's idempotency keys in front of localstripe (which has none), losing answers on demand.

    Each new key is forwarded once and its answer remembered; the same key again
    gets that answer without a second call, as at Stripe. While ``lose`` is
    above zero, a forwarded request's answer is dropped (the connection closes):
    Stripe acted, the client saw a network error.
    """

    def __init__(self, upstream: str) -> None:
        """Listen on a free local port and forward to ``upstream``."""
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.lose = 0

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forward one request to the proxy's upstream, once per idempotency key."""

    server: _StripeIdempotencyProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Idempotency-Key", "")
        if key and key in self.server.answers:
            status, answer = self.server.answers[key]
        else:
            headers = {
                name: self.headers[name]
                for name in ("Authorization", "Content-Type", "Stripe-Version")
                if self.headers.get(name)
            }
            request = urllib.request.Request(
                self.server.upstream + self.path,
                data=body or None,
                headers=headers,
                method=self.command,
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status, answer = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, answer = exc.code, exc.read()
            if key:
                self.server.answers[key] = (status, answer)
            if self.server.lose > 0:
                self.server.lose -= 1
                self.close_connection = True
                return  # Stripe acted; its answer never reaches the client
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def idempotent_stripe(settings, localstripe) -> Iterator[_StripeIdempotencyProxy]:
    """Point the Stripe client at a proxy honouring idempotency keys in front of localstripe."""
    proxy = _StripeIdempotencyProxy(localstripe.url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    settings.STRIPE_API_BASE = proxy.url
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_a_refund_whose_answer_was_lost_is_not_made_twice_when_the_clerk_retries(
    card_payment, staff_user, localstripe, idempotent_stripe
):
    """Stripe refunded but its answer was lost: the row holds the amount; a retry re-sends it."""
    idempotent_stripe.lose = 1

    row = refund_40_without_answer(card_payment, staff_user)

    assert [r["amount"] for r in stripe_refunds(localstripe, card_payment)] == [4000]

    again = PaymentService.refund(
        card_payment, amount="40.00", reason=Refund.Reason.OTHER, staff_user=staff_user
    )

    assert again.pk == row.pk
    [at_stripe] = stripe_refunds(localstripe, card_payment)
    row.refresh_from_db()
    assert (row.status, row.stripe_refund_id) == (Refund.Status.SUCCEEDED, at_stripe["id"])
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == Decimal("40.00")
    assert Order.objects.get(pk=card_payment.order_id).status == S.PARTIALLY_REFUNDED
    assert [e.action for e in entries(card_payment.order)].count(Action.REFUND) == 1


def test_a_whole_refund_stripe_did_not_answer_can_be_retried_from_the_order(
    card_payment, staff_user, settings, tmp_path, localstripe
):
    """Its pending row holds all of the payment, yet the Refund action still offers it."""
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url
    with pytest.raises(ValidationError, match="Stripe did not answer"):
        PaymentService.refund(
            card_payment, amount="100.00", reason=Refund.Reason.OTHER, staff_user=staff_user
        )
    order = Order.objects.get(pk=card_payment.order_id)

    assert allowed_actions(order)[OrderAction.REFUND].allowed
    assert refundable_payments(order) == [(card_payment, Decimal("100.00"))]

    settings.STRIPE_API_BASE = localstripe.url  # Stripe is back
    again = PaymentService.refund(
        card_payment, amount="100.00", reason=Refund.Reason.OTHER, staff_user=staff_user
    )

    assert again.status == Refund.Status.SUCCEEDED
    assert Refund.objects.filter(payment=card_payment).count() == 1
    assert [r["amount"] for r in stripe_refunds(localstripe, card_payment)] == [10000]
    order.refresh_from_db()
    assert order.status == S.REFUNDED
    assert not allowed_actions(order)[OrderAction.REFUND].allowed


def test_an_unanswered_refund_older_than_stripes_key_memory_is_not_resent(
    card_payment, staff_user, settings, tmp_path, localstripe
):
    """Stripe forgets an idempotency key after 24 hours: re-sending then could refund twice."""
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url
    refund = refund_40_without_answer(card_payment, staff_user)
    Refund.objects.filter(pk=refund.pk).update(created_at=timezone.now() - timedelta(hours=24))
    settings.STRIPE_API_BASE = localstripe.url  # Stripe is back

    with pytest.raises(ValidationError, match="too long ago to re-send safely"):
        PaymentService.refund(
            card_payment, amount="40.00", reason=Refund.Reason.OTHER, staff_user=staff_user
        )

    assert stripe_refunds(localstripe, card_payment) == []  # nothing was sent
    assert list(Refund.objects.filter(payment=card_payment).values_list("pk", "status")) == [
        (refund.pk, Refund.Status.PENDING)
    ]
    card_payment.refresh_from_db()
    assert card_payment.refunded_amount == 0
