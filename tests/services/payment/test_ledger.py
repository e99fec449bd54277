"""The one rule (``settle_order``): an order's status, flag and history follow from its money."""

import ast
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from backoffice.models import Order, OrderHistoryEntry, Payment, Refund
from backoffice.services.payment import (
    PaymentService,
    allowed_actions,
    apply_charge_refund,
    apply_payment_intent,
)
from backoffice.services.payment.ledger import Money, OrderAction, status_from_money
from backoffice.stripe_client import parse_charge, parse_payment_intent
from tests.stripe_fixtures import refunded_charge, succeeded_intent

S = Order.Status
BACKOFFICE = Path(__file__).resolve().parents[3] / "backoffice"
LEDGER = BACKOFFICE / "services" / "payment" / "ledger.py"
# Fields of an order that only the ledger's rule may assign.
RULED_FIELDS = {"status", "needs_attention", "attention_reason"}
# Names that hold a payment (or another row with a status of its own), never an order.
NOT_AN_ORDER = {"payment", "attempt", "refund", "dispute", "email"}
# Creating an order may set its first status: an imported order arrives with one.
CREATION = {("services/order_import.py", "fill_order")}


@pytest.mark.parametrize(
    ("current", "total", "gross", "net", "taken", "expected"),
    [
        (S.PENDING, "100", "0", "0", False, S.PENDING),  # nothing received
        (S.PENDING, "100", "30", "30", True, S.PENDING),  # part paid
        (S.PENDING, "100", "100", "100", True, S.PAID),
        (S.PENDING, "100", "130", "130", True, S.PAID),  # overpaid
        (S.PENDING, "0", "0", "0", True, S.PAID),  # a comp of a zero-total order
        (S.PENDING, "0", "0", "0", False, S.PENDING),  # zero total, nothing recorded
        (S.PAID, "100", "130", "100", True, S.PAID),  # the overpayment given back
        (S.PAID, "100", "100", "40", True, S.PARTIALLY_REFUNDED),
        (S.PAID, "100", "100", "0", True, S.REFUNDED),
        (S.PENDING, "100", "100", "0", True, S.REFUNDED),  # refund arrived with its success
        (S.CANCELLED, "100", "100", "100", True, S.CANCELLED),  # money on a cancelled order
    ],
)
def test_status_follows_the_money(current, total, gross, net, taken, expected):
    money = Money(gross=Decimal(gross), net=Decimal(net), taken=taken)
    assert status_from_money(current, Decimal(total), money) == expected


def _assigned_fields(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, enclosing function, field) for each assignment of an order's ruled field."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef) else function
            targets = []
            if isinstance(child, ast.Assign):
                targets = child.targets
            elif isinstance(child, ast.AugAssign | ast.AnnAssign):
                targets = [child.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in RULED_FIELDS:
                    owner = target.value.id if isinstance(target.value, ast.Name) else ""
                    if target.attr != "status" or owner not in NOT_AN_ORDER:
                        found.append((child.lineno, name, target.attr))
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                chain = ast.unparse(child.func)
                keywords = {k.arg for k in child.keywords} & RULED_FIELDS
                if child.func.attr == "update" and "Order" in chain.split(".") and keywords:
                    found.append((child.lineno, name, ", ".join(sorted(keywords))))
            visit(child, name)

    visit(tree, "")
    return found


def test_only_the_ledger_assigns_an_orders_status_or_attention_flag():
    """A second writer of the rule (e.g. ``order.status = ...`` in a new service) fails here."""
    writers = []
    for path in sorted(BACKOFFICE.rglob("*.py")):
        if path == LEDGER or "migrations" in path.parts:
            continue
        relative = path.relative_to(BACKOFFICE).as_posix()
        for line, function, field in _assigned_fields(ast.parse(path.read_text())):
            if (relative, function) not in CREATION:
                writers.append(f"{relative}:{line} ({function}) assigns {field}")
    assert writers == []


def test_the_writer_check_sees_an_assignment_and_an_update():
    """The check itself: it finds both forms of writing an order's status."""
    source = (
        "def f(order, payment):\n"
        "    order.status = 'paid'\n"
        "    payment.status = 'succeeded'\n"
        "    Order.objects.filter(pk=1).update(needs_attention=True)\n"
    )
    assert _assigned_fields(ast.parse(source)) == [
        (2, "f", "status"),
        (4, "f", "needs_attention"),
    ]


def entries(order: Order) -> list[OrderHistoryEntry]:
    """The order's history, oldest first."""
    return list(OrderHistoryEntry.objects.filter(order=order).order_by("created_at", "id"))


@pytest.mark.django_db
def test_manual_payment_in_full_is_one_history_entry_by_the_clerk(make_order, staff_user):
    order = make_order("100.00")

    PaymentService.record_manual(
        order, amount=Decimal("100.00"), reference="WIRE-1", staff_user=staff_user
    )

    [entry] = entries(order)
    assert entry.action == OrderHistoryEntry.Action.MANUAL_PAYMENT
    assert (entry.status_before, entry.status_after) == (S.PENDING, S.PAID)
    assert entry.amount == Decimal("100.00")
    assert entry.actor == staff_user
    assert "WIRE-1" in entry.message
    order.refresh_from_db()
    assert order.status == S.PAID


@pytest.mark.django_db
def test_part_payment_keeps_the_order_pending_and_records_it(make_order, staff_user):
    order = make_order("100.00")

    PaymentService.record_manual(order, amount=Decimal("30.00"), staff_user=staff_user)

    [entry] = entries(order)
    assert (entry.status_before, entry.status_after) == (S.PENDING, S.PENDING)
    assert entry.amount == Decimal("30.00")


@pytest.mark.django_db
def test_comp_without_a_staff_user_is_recorded_as_system(make_order):
    order = make_order("0.00")

    PaymentService.record_comp(order)

    [entry] = entries(order)
    assert entry.action == OrderHistoryEntry.Action.COMP
    assert (entry.actor, entry.actor_name) == (None, "system")
    assert (entry.status_before, entry.status_after) == (S.PENDING, S.PAID)


@pytest.mark.django_db
def test_a_refused_write_records_nothing(make_order, staff_user):
    order = make_order("100.00")

    with pytest.raises(ValidationError):
        PaymentService.record_manual(order, amount=Decimal("100.01"), staff_user=staff_user)

    assert entries(order) == []
    assert not Payment.objects.filter(order=order).exists()


@pytest.mark.django_db
def test_regenerating_the_link_is_in_the_history(make_order, staff_user):
    order = make_order("100.00")

    PaymentService.regenerate_payment_link(order, staff_user=staff_user)

    [entry] = entries(order)
    assert (entry.action, entry.actor) == (OrderHistoryEntry.Action.PAYMENT_LINK, staff_user)
    assert entry.status_after == S.PENDING


@pytest.mark.django_db
def test_refunding_exactly_the_overpayment_clears_the_overpaid_flag(conference, make_order):
    """30.00 cash, then a card payment of the full 100.00; the 30.00 is given back."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"))
    intent = parse_payment_intent(succeeded_intent(order, "pi_over"))
    apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)
    order.refresh_from_db()
    assert order.needs_attention
    assert order.attention_reason.startswith("Overpaid by 30.00")

    charge = parse_charge(refunded_charge("ch_over", "pi_over", 10000, 3000))
    apply_charge_refund(conference, charge)

    order.refresh_from_db()
    assert order.status == S.PAID
    assert not order.needs_attention
    assert order.attention_reason == ""
    refund = entries(order)[-1]
    assert refund.action == OrderHistoryEntry.Action.REFUND
    assert refund.amount == Decimal("30.00")
    assert (refund.status_before, refund.status_after) == (S.PAID, S.PAID)
    assert refund.actor_name == "Stripe"


@pytest.mark.django_db
def test_a_partial_overpayment_refund_keeps_the_flag(conference, make_order):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"))
    apply_payment_intent(
        conference, parse_payment_intent(succeeded_intent(order, "pi_o2")), Payment.Status.SUCCEEDED
    )

    apply_charge_refund(conference, parse_charge(refunded_charge("ch_o2", "pi_o2", 10000, 1000)))

    order.refresh_from_db()
    assert order.status == S.PAID
    assert order.needs_attention  # 20.00 is still to give back


@pytest.mark.django_db
def test_a_refund_arriving_before_its_success_is_one_entry(conference, make_order):
    order = make_order("100.00")
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_early",
    )

    apply_charge_refund(
        conference, parse_charge(refunded_charge("ch_early", "pi_early", 10000, 4000))
    )

    [entry] = entries(order)
    assert entry.action == OrderHistoryEntry.Action.CARD_PAYMENT
    assert (entry.status_before, entry.status_after) == (S.PENDING, S.PARTIALLY_REFUNDED)
    assert "refunded 40.00" in entry.message


def reasons(order: Order) -> dict[str, str]:
    """``allowed_actions`` as {action: "" when allowed, else the reason}."""
    return {str(name): check.reason for name, check in allowed_actions(order).items()}


@pytest.mark.django_db
def test_allowed_actions_of_a_pending_order_with_a_balance(make_order):
    order = make_order("100.00")

    assert reasons(order) == {
        "record_comp": f"{order.reference} has a total of 100.00 USD; "
        "only zero-total orders can be comped.",
        "record_manual": "",
        "regenerate_payment_link": "",
        "send_payment_link": "",
        "resolve_attention": f"{order.reference} does not need attention.",
        "cancel_order": "",
        "refund": f"{order.reference} has no payment with anything left to refund.",
        "sync_from_stripe": f"{order.reference} has no Stripe payment to re-sync.",
    }


@pytest.mark.django_db
def test_allowed_actions_of_a_pending_zero_total_order(make_order):
    order = make_order("0.00")

    assert reasons(order)["record_comp"] == ""
    assert "has no balance due" in reasons(order)["record_manual"]
    assert "has no balance due" in reasons(order)["send_payment_link"]


@pytest.mark.django_db
def test_allowed_actions_of_a_paid_order_say_why_not(make_order):
    order = make_order("50.00")
    PaymentService.record_manual(order, amount=Decimal("50.00"))

    assert reasons(order) == {
        "record_comp": f"{order.reference} is paid; only pending orders can be comped.",
        "record_manual": f"{order.reference} is paid; "
        "manual payments can only be recorded for pending orders.",
        "regenerate_payment_link": f"{order.reference} is paid; "
        "only a pending order's payment link can be replaced.",
        "send_payment_link": f"{order.reference} is paid; "
        "only a pending order's payment link can be e-mailed.",
        "resolve_attention": f"{order.reference} does not need attention.",
        "cancel_order": f"{order.reference} is paid; only a pending order with no money "
        "received can be cancelled (refund its payments instead).",
        "refund": "",
        "sync_from_stripe": f"{order.reference} has no Stripe payment to re-sync.",
    }


@pytest.mark.django_db
def test_the_services_refuse_what_allowed_actions_refuses(make_order):
    """A button shown a moment too long: the service refuses under the lock, same sentence."""
    order = make_order("50.00")
    stale = Order.objects.get(pk=order.pk)  # read while still pending
    PaymentService.record_manual(order, amount=Decimal("50.00"))

    with pytest.raises(ValidationError) as refused:
        PaymentService.regenerate_payment_link(stale)

    assert refused.value.messages == [reasons(order)["regenerate_payment_link"]]
    stale.refresh_from_db()
    assert stale.payment_token == order.payment_token


@pytest.mark.django_db
def test_money_on_a_refunded_order_stays_flagged_until_given_back(conference, make_order):
    """A later change that gives nothing back (a declined card) never clears the flag."""
    order = make_order("100.00")
    apply_payment_intent(
        conference, parse_payment_intent(succeeded_intent(order, "pi_r1")), Payment.Status.SUCCEEDED
    )
    apply_charge_refund(conference, parse_charge(refunded_charge("ch_r1", "pi_r1", 10000, 10000)))
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_r3",
    )
    late = parse_payment_intent(succeeded_intent(order, "pi_r2"))
    apply_payment_intent(conference, late, Payment.Status.SUCCEEDED)  # paid again, by mistake
    order.refresh_from_db()
    assert order.status == S.PAID  # it holds its total again
    assert "succeeded while the order was refunded" in order.attention_reason

    declined = parse_payment_intent(
        succeeded_intent(order, "pi_r3", status="requires_payment_method", amount_received=0)
        | {"last_payment_error": {"message": "Your card was declined."}}
    )
    apply_payment_intent(conference, declined, Payment.Status.FAILED)

    order.refresh_from_db()
    assert order.needs_attention
    assert "succeeded while the order was refunded" in order.attention_reason


@pytest.mark.django_db
def test_a_part_payment_given_back_does_not_count_towards_paying_the_order(make_order, staff_user):
    """60 paid and refunded, then 40 paid: 40 of 100 held, so the order is pending with 60 due."""
    order = make_order("100.00")
    deposit = PaymentService.record_manual(order, amount=Decimal("60.00"), staff_user=staff_user)
    PaymentService.refund(
        deposit, amount="60.00", reason=Refund.Reason.REQUESTED_BY_CUSTOMER, staff_user=staff_user
    )

    PaymentService.record_manual(order, amount=Decimal("40.00"), staff_user=staff_user)

    order = Order.objects.get(pk=order.pk)
    assert order.status == S.PENDING
    assert order.balance_due == Decimal("60.00")
    assert order.paid_notified_at is None
    assert allowed_actions(order)[OrderAction.RECORD_MANUAL].allowed


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("total", "write"),
    [
        ("100.00", lambda order: PaymentService.record_manual(order, amount=Decimal("40.00"))),
        ("0.00", lambda order: PaymentService.record_comp(order)),
        (
            "100.00",
            lambda order: PaymentService.cancel_order(
                order, reason="Duplicate order", staff_user=None
            ),
        ),
    ],
    ids=["manual payment", "comp", "cancel"],
)
def test_every_ledger_write_moves_the_orders_last_change(make_order, total, write):
    order = make_order(total)
    two_days_ago = timezone.now() - timedelta(days=2)
    Order.objects.filter(pk=order.pk).update(updated_at=two_days_ago)
    order.refresh_from_db()

    write(order)

    order.refresh_from_db()
    assert order.updated_at > two_days_ago + timedelta(days=1)


@pytest.mark.django_db
def test_a_card_payment_from_stripe_moves_the_orders_last_change(conference, make_order):
    order = make_order("100.00")
    two_days_ago = timezone.now() - timedelta(days=2)
    Order.objects.filter(pk=order.pk).update(updated_at=two_days_ago)

    intent = parse_payment_intent(succeeded_intent(order, "pi_moves"))
    apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)

    order.refresh_from_db()
    assert order.status == S.PAID
    assert order.updated_at > two_days_ago + timedelta(days=1)
