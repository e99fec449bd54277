"""Load and race scenarios of issue 9, against gunicorn (4 workers) on PostgreSQL.

Every scenario talks to the module's ``load_server`` (tests/load/server.py) on
127.0.0.1 only, with request loops bounded in count and by a deadline, and
checks the ledger by SQL afterwards. Each prints a one-line summary (shown at
the end of every run by tests/load/conftest.py, and with ``-s``).

Issue 10 adds, at the end, the same form submitted twice (double-submit
protection) and clerks refunding the same payment at once.
"""

import copy
import functools
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, Q
from django.urls import reverse

from backoffice.admin.forms import new_form_key
from backoffice.models import Conference, Order, OrderEmail, Payment, StripeEvent
from backoffice.services.payment import PaymentService
from backoffice.services.staff_groups import FINANCE, FRONT_DESK, create_staff_groups
from tests.load.server import AdminSession, Server, report
from tests.stripe_fixtures import LocalStripe, build_event

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

STORM_ORDERS = 200
DESK_ORDERS = 20
LATE_EVENTS = 40  # orders that also get a late payment_failed / canceled after succeeding
SENDERS = 16
DELIVERIES = 3  # each succeeded event is delivered this many times
STORM_DEADLINE = 150  # seconds for all deliveries of one storm
MAX_ATTEMPTS = 25  # per delivery when senders retry like Stripe
KILL_INTERVAL = (0.3, 0.5)
MAX_KILLS = 15
MIN_KILLS = 3
CLERKS = 4
CLERK_PASSWORD = "desk-pass-123"
REFUSED_NOT_PENDING = "manual payments can only be recorded for pending orders"
OVERPAID = "Overpaid"


# --- Building what the services can produce ---------------------------------------------


@dataclass
class CardOrder:
    """An order with a Stripe attempt started through the service and paid at localstripe."""

    order: Order
    intent: dict[str, Any]  # the succeeded PaymentIntent, as Stripe returns it


def card_orders(
    localstripe: LocalStripe, make_order: Callable[..., Order], conference: Conference, count: int
) -> list[CardOrder]:
    """``count`` orders whose card payments Stripe (localstripe) has taken, not yet told to us.

    Each attempt is started by ``PaymentService.initiate_payment`` and confirmed
    with a test card at localstripe, as Stripe.js would; no webhook is delivered.
    """
    orders = [make_order(f"{50 + i % 7}.00", conference=conference) for i in range(count)]
    for order in orders:
        PaymentService.initiate_payment(order)
    intents = dict(
        Payment.objects.filter(order__in=orders).values_list("order_id", "stripe_payment_intent_id")
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        confirmed = list(
            pool.map(lambda o: localstripe.confirm_payment_intent(intents[o.pk]), orders)
        )
    assert all(intent["status"] == "succeeded" for intent in confirmed)
    return [CardOrder(order, intent) for order, intent in zip(orders, confirmed, strict=True)]


def late_event(intent: dict[str, Any], event_type: str) -> dict[str, Any]:
    """A stale failed/canceled event for an intent that has since succeeded."""
    stale = copy.deepcopy(intent)
    if event_type == "payment_intent.payment_failed":
        stale["status"] = "requires_payment_method"
        stale["last_payment_error"] = {"message": "Your card was declined."}
    else:
        stale["status"] = "canceled"
    stale["amount_received"] = 0
    return build_event(event_type, stale)


def front_desk_clerk(server: Server, username: str) -> AdminSession:
    """A Front desk staff member (its group's permissions only), logged in to the admin."""
    create_staff_groups()
    user = get_user_model().objects.create_user(
        username, f"{username}@example.com", CLERK_PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=FRONT_DESK))
    return server.admin_session(username, CLERK_PASSWORD)


def record_manual_path(order: Order) -> str:
    """The admin's Record manual payment action of an order."""
    return reverse("admin:backoffice_order_record_manual", args=[order.pk])


def manual_form(order: Order, key: str = "") -> dict[str, str]:
    """The Record manual payment dialog's form for the order's whole total, freshly opened."""
    return {
        "_form_submitted": "True",
        "amount": str(order.total),
        "channel": "cash",
        "reference": "",
        "note": "",
        "idempotency_key": key or new_form_key(),
    }


# --- Sending like Stripe ------------------------------------------------------------------


@dataclass
class Tally:
    """What the senders saw, shared by their threads."""

    statuses: Counter = field(default_factory=Counter)
    retries: int = 0
    connection_errors: int = 0
    gave_up: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int | str, *, retried: bool = False) -> None:
        """Record one answer (or 'conn' for a connection error)."""
        with self.lock:
            self.statuses[status] += 1
            if status == "conn":
                self.connection_errors += 1
            if retried:
                self.retries += 1

    @property
    def requests(self) -> int:
        """How many requests were sent in all."""
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        """Answers of 500 and above."""
        return sum(n for s, n in self.statuses.items() if isinstance(s, int) and s >= 500)


def deliver(
    send: Callable[[], requests.Response],
    tally: Tally,
    *,
    retry: bool,
    deadline: float,
) -> requests.Response | None:
    """Send once, or like Stripe until an answer below 500 (bounded in attempts and time).

    Transport errors (a killed worker's reset connection) and 5xx (503 included) are
    retried after a short backoff.
    """
    for attempt in range(MAX_ATTEMPTS if retry else 1):
        if time.monotonic() > deadline:
            break
        try:
            response = send()
        except requests.RequestException:  # refused, reset or timed out, as Stripe sees it
            tally.count("conn", retried=retry)
            if retry:
                time.sleep(min(0.05 * 2**attempt, 1.0))
            continue
        tally.count(response.status_code, retried=retry and response.status_code >= 500)
        if response.status_code < 500 or not retry:
            return response
        time.sleep(min(0.05 * 2**attempt, 1.0))
    return None


@dataclass
class Storm:
    """The outcome of one webhook storm."""

    webhooks: Tally
    desk: Tally
    desk_answers: dict[int, str]
    kills: int
    seconds: float
    swept: int = 0  # order_paid sent afterwards by the sweep, not by the task workers


def run_storm(
    server: Server,
    conference: Conference,
    paid: list[CardOrder],
    desk: AdminSession,
    *,
    kill_workers: bool,
) -> Storm:
    """Deliver every succeeded event 3 times, shuffled, from 16 threads; late events after.

    Meanwhile a clerk pays the first ``DESK_ORDERS`` orders in full at the desk
    (the real admin dialog); each of those orders' card events is queued only
    once its desk payment was answered, so all of them are paid twice. With
    ``kill_workers`` a worker is SIGKILLed every 0.3-0.5 s while events flow,
    and everyone retries like Stripe does.
    """
    desk_orders, card_only = paid[:DESK_ORDERS], paid[DESK_ORDERS:]
    succeeded = {c.order.pk: build_event("payment_intent.succeeded", c.intent) for c in paid}
    deliveries: list[dict[str, Any]] = [
        succeeded[c.order.pk] for c in card_only for _ in range(DELIVERIES)
    ]
    random.shuffle(deliveries)
    late = [
        late_event(c.intent, kind)
        for c, kind in zip(
            card_only[:LATE_EVENTS],
            ["payment_intent.payment_failed", "payment_intent.canceled"] * LATE_EVENTS,
            strict=False,
        )
    ]
    pending: queue.Queue = queue.Queue()
    for event in deliveries:
        pending.put(event)

    webhooks, desk_tally = Tally(), Tally()
    desk_answers: dict[int, str] = {}
    kills = 0
    deadline = time.monotonic() + STORM_DEADLINE
    desk_finished = threading.Event()
    storm_over = threading.Event()
    enough_kills = threading.Event()

    def clerk() -> None:
        try:
            for c in desk_orders:
                response = deliver(
                    lambda c=c: desk.post_form(record_manual_path(c.order), manual_form(c.order)),
                    desk_tally,
                    retry=kill_workers,
                    deadline=deadline,
                )
                desk_answers[c.order.pk] = desk_outcome(response)
                events = [succeeded[c.order.pk]] * DELIVERIES
                for event in events:
                    pending.put(event)
        finally:
            if kill_workers:  # however fast this machine, the storm outlasts a few kills
                enough_kills.wait(timeout=30)
            for event in random.sample(late, len(late)):
                pending.put(event)  # late: after every succeeded event was queued
            desk_finished.set()

    def sender() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                try:
                    event = pending.get(timeout=0.2)
                except queue.Empty:
                    if desk_finished.is_set() and pending.empty():
                        return
                    continue
                response = deliver(
                    lambda e=event: server.post_webhook(conference, e, session=session),
                    webhooks,
                    retry=kill_workers,
                    deadline=deadline,
                )
                if response is None or response.status_code != 200:
                    with webhooks.lock:
                        webhooks.gave_up.append(event["id"])

    def killer() -> None:
        nonlocal kills
        while kills < MAX_KILLS and not storm_over.wait(random.uniform(*KILL_INTERVAL)):
            if server.kill_worker() is not None:
                kills += 1
                if kills >= MIN_KILLS:
                    enough_kills.set()

    started = time.monotonic()
    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    threads.append(threading.Thread(target=clerk))
    killing = threading.Thread(target=killer) if kill_workers else None
    for thread in threads:
        thread.start()
    if killing is not None:
        killing.start()
    for thread in threads:
        thread.join(timeout=STORM_DEADLINE + 60)
    storm_over.set()
    if killing is not None:
        killing.join(timeout=10)
    seconds = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a sender outlived the storm's deadline"
    if kill_workers:
        server.wait_for_workers()
    return Storm(webhooks, desk_tally, desk_answers, kills, seconds)


def desk_outcome(response: requests.Response | None) -> str:
    """What the clerk saw: 'recorded', 'refused' (with the reason on the form) or other."""
    if response is None:
        return "no answer"
    if response.status_code == 302:
        return "recorded"
    if response.status_code == 200 and REFUSED_NOT_PENDING in response.text:
        return "refused"
    return f"HTTP {response.status_code}"


def summary_line(scenario: str, storm: Storm) -> str:
    """The one-line summary of a storm."""
    statuses = dict(sorted(storm.webhooks.statuses.items(), key=str))
    return (
        f"{scenario}: {storm.webhooks.requests} webhook requests {statuses}, "
        f"{storm.desk.requests} desk requests {dict(storm.desk.statuses)}, "
        f"{storm.kills} workers killed, {storm.webhooks.retries + storm.desk.retries} retries, "
        f"{storm.seconds:.1f}s, order_paid sent by the sweep afterwards: {storm.swept}"
    )


# --- Checking the ledger by SQL -----------------------------------------------------------


def assert_storm_ledger(server: Server, paid: list[CardOrder], summary: str) -> None:
    """Each order paid once by card (once more at the desk), PAID, flagged iff overpaid."""
    order_ids = [c.order.pk for c in paid]
    desk_ids = {c.order.pk for c in paid[:DESK_ORDERS]}
    orders = Order.objects.filter(pk__in=order_ids).annotate(
        card=Count(
            "payments",
            filter=Q(
                payments__method=Payment.Method.STRIPE,
                payments__status=Payment.Status.SUCCEEDED,
            ),
        ),
        desk=Count(
            "payments",
            filter=Q(
                payments__method=Payment.Method.MANUAL,
                payments__status=Payment.Status.SUCCEEDED,
            ),
        ),
    )
    wrong = []
    for order in orders:
        expected_desk = 1 if order.pk in desk_ids else 0
        overpaid = OVERPAID in order.attention_reason
        if (
            order.status != Order.Status.PAID
            or order.card != 1
            or order.desk != expected_desk
            or order.needs_attention != bool(expected_desk)
            or overpaid != bool(expected_desk)
        ):
            wrong.append((order.reference, order.status, order.card, order.desk, overpaid))
    assert len(orders) == len(paid)
    assert wrong == [], f"{summary}\norders in a wrong state: {wrong[:10]}"

    intents = [c.intent["id"] for c in paid]
    rows = Counter(
        Payment.objects.filter(stripe_payment_intent_id__in=intents).values_list(
            "stripe_payment_intent_id", flat=True
        )
    )
    assert rows == Counter(intents), f"{summary}\none payment row per intent expected"

    events = StripeEvent.objects.filter(conference=paid[0].order.conference)
    unprocessed = list(
        events.filter(Q(processed_at__isnull=True) | ~Q(last_error="")).values_list(
            "stripe_event_id", "last_error"
        )
    )
    assert unprocessed == [], f"{summary}\nevents not processed: {unprocessed[:5]}"
    assert events.count() == len(paid) + LATE_EVENTS, summary

    counts = server.order_paid_counts(order_ids)
    not_once = {pk: n for pk, n in counts.items() if n != 1}
    assert not_once == {}, f"{summary}\norder_paid not sent exactly once: {not_once}"

    # Each paid order's receipt went out once, through the real SMTP server.
    receipts = Counter(
        OrderEmail.objects.filter(
            order_id__in=order_ids, kind=OrderEmail.Kind.RECEIPT, status=OrderEmail.Status.SENT
        ).values_list("order_id", flat=True)
    )
    assert receipts == Counter(order_ids), f"{summary}\nreceipts not sent once: {receipts}"


# --- Scenarios ------------------------------------------------------------------------------


def storm_scenario(
    name: str,
    *,
    load_server: Server,
    localstripe: LocalStripe,
    stripe_conference: Conference,
    make_order: Callable[..., Order],
    kill_workers: bool,
) -> tuple[Storm, str]:
    """Build the orders, run the storm, check the ledger; return the storm and its summary."""
    started = time.monotonic()
    paid = card_orders(localstripe, make_order, stripe_conference, STORM_ORDERS)
    setup = time.monotonic() - started
    desk = front_desk_clerk(load_server, "desk")
    storm = run_storm(load_server, stripe_conference, paid, desk, kill_workers=kill_workers)
    # What the manual sweep still finds once the task workers are done: nothing, since each
    # order_paid task commits with its payment (even when gunicorn workers are SIGKILLed).
    storm.swept = load_server.send_due_order_paid()
    summary = f"{summary_line(name, storm)} (setup of {STORM_ORDERS} orders {setup:.1f}s)"
    report(summary)
    assert storm.webhooks.gave_up == [], f"{summary}\nundelivered: {storm.webhooks.gave_up[:5]}"
    assert storm.swept == 0, f"{summary}\norder_paid left for the sweep by the task workers"
    # After a SIGKILL a clerk may retry a payment that was committed: then it is refused.
    answers = {"recorded", "refused"} if kill_workers else {"recorded"}
    assert set(storm.desk_answers.values()) <= answers, f"{summary}\n{storm.desk_answers}"
    assert_storm_ledger(load_server, paid, summary)
    return storm, summary


@pytest.fixture
def storm(
    load_server: Server,
    localstripe: LocalStripe,
    stripe_conference: Conference,
    make_order: Callable[..., Order],
) -> Callable[..., tuple[Storm, str]]:
    """Run a storm scenario by name against this test's Stripe conference."""
    return functools.partial(
        storm_scenario,
        load_server=load_server,
        localstripe=localstripe,
        stripe_conference=stripe_conference,
        make_order=make_order,
    )


def test_webhook_storm_pays_every_order_exactly_once(storm) -> None:
    result, summary = storm("webhook storm", kill_workers=False)
    assert result.webhooks.server_errors == 0, summary
    assert result.desk.server_errors == 0, summary
    assert result.webhooks.requests == STORM_ORDERS * DELIVERIES + LATE_EVENTS, summary
    assert result.swept == 0, summary  # without crashes every worker sent its own


def test_webhook_storm_survives_workers_killed_mid_request(storm) -> None:
    result, summary = storm("webhook storm with SIGKILLed workers", kill_workers=True)
    assert result.kills >= MIN_KILLS, summary


def test_clerks_racing_to_pay_the_same_order_record_one_payment(
    load_server: Server, make_order
) -> None:
    rounds = 3
    clerks = [front_desk_clerk(load_server, f"clerk{i}") for i in range(CLERKS)]
    tally = Tally()
    outcomes: Counter = Counter()
    orders = [make_order("80.00") for _ in range(rounds)]
    started = time.monotonic()
    for order in orders:
        barrier = threading.Barrier(CLERKS)
        deadline = time.monotonic() + 60

        def pay(
            clerk: AdminSession, order: Order = order, barrier=barrier, deadline=deadline
        ) -> str:
            barrier.wait(timeout=30)
            response = deliver(
                lambda: clerk.post_form(record_manual_path(order), manual_form(order)),
                tally,
                retry=False,
                deadline=deadline,
            )
            return desk_outcome(response)

        with ThreadPoolExecutor(max_workers=CLERKS) as pool:
            answers = Counter(pool.map(pay, clerks))
        outcomes.update(answers)
        summary = (
            f"clerks racing: {tally.requests} requests {dict(tally.statuses)}, outcomes "
            f"{dict(outcomes)}, {time.monotonic() - started:.1f}s"
        )
        assert answers == {"recorded": 1, "refused": CLERKS - 1}, summary
        order.refresh_from_db()
        assert order.status == Order.Status.PAID, summary
        assert order.payments.filter(method=Payment.Method.MANUAL).count() == 1, summary
        assert load_server.order_paid_counts([order.pk]) == {order.pk: 1}, summary
    report(summary)
    assert tally.server_errors == 0, summary


def test_clerk_racing_the_card_webhook_keeps_both_payments_and_flags_overpaid(
    load_server: Server, localstripe: LocalStripe, stripe_conference: Conference, make_order
) -> None:
    rounds = 6
    paid = card_orders(localstripe, make_order, stripe_conference, rounds)
    desk = front_desk_clerk(load_server, "desk")
    tally = Tally()
    outcomes: Counter = Counter()
    started = time.monotonic()
    for c in paid:
        barrier = threading.Barrier(2)
        deadline = time.monotonic() + 60
        event = build_event("payment_intent.succeeded", c.intent)

        def at_desk(c: CardOrder = c, barrier=barrier, deadline=deadline) -> str:
            barrier.wait(timeout=30)
            response = deliver(
                lambda: desk.post_form(record_manual_path(c.order), manual_form(c.order)),
                tally,
                retry=False,
                deadline=deadline,
            )
            return desk_outcome(response)

        def by_card(barrier=barrier, deadline=deadline, event=event) -> int:
            barrier.wait(timeout=30)
            response = deliver(
                lambda: load_server.post_webhook(stripe_conference, event),
                tally,
                retry=False,
                deadline=deadline,
            )
            return response.status_code if response is not None else 0

        with ThreadPoolExecutor(max_workers=2) as pool:
            desk_answer, card_answer = pool.submit(at_desk), pool.submit(by_card)
            desk_seen, card_seen = desk_answer.result(), card_answer.result()
        outcomes[f"desk {desk_seen}"] += 1
        order = Order.objects.get(pk=c.order.pk)
        card = order.payments.filter(
            method=Payment.Method.STRIPE, status=Payment.Status.SUCCEEDED
        ).count()
        manual = order.payments.filter(method=Payment.Method.MANUAL).count()
        summary = (
            f"clerk racing the webhook: {tally.requests} requests {dict(tally.statuses)}, "
            f"outcomes {dict(outcomes)}, {time.monotonic() - started:.1f}s"
        )
        assert card_seen == 200, summary
        assert order.status == Order.Status.PAID, summary
        assert card == 1, summary
        if desk_seen == "recorded":
            # The desk won the lock: both payments stand, the order is overpaid.
            assert manual == 1, summary
            assert order.needs_attention and OVERPAID in order.attention_reason, summary
        else:
            # The card won: the clerk is told the order is no longer pending.
            assert desk_seen == "refused", summary
            assert manual == 0 and not order.needs_attention, summary
        assert load_server.order_paid_counts([order.pk]) == {order.pk: 1}, summary
    report(summary)
    assert tally.server_errors == 0, summary


# --- The same form submitted twice (issue 10) ---------------------------------------------

SAME_FORM_SENDERS = 3  # one browser sending the same form this many times at once


def test_the_same_form_submitted_twice_records_one_payment_per_form(
    load_server: Server, make_order
) -> None:
    """A double click at the same moment, then resubmits in sequence: one payment per form.

    Rounds of one form (one key) POSTed by several threads of the clerk's
    session at once, for the whole total; then two forms of 40.00 on an 80.00
    order, each posted twice in a row: two payments, the order paid once.
    """
    clerk = front_desk_clerk(load_server, "doubleclick")
    tally = Tally()
    started = time.monotonic()
    raced = [make_order("80.00") for _ in range(4)]
    sent: dict[int, list[str]] = {}  # order pk -> the keys of the forms sent for it
    for order in raced:
        barrier = threading.Barrier(SAME_FORM_SENDERS)
        form = manual_form(order)
        sent[order.pk] = [form["idempotency_key"]]
        deadline = time.monotonic() + 60

        def send(_: int, order: Order = order, form=form, barrier=barrier, deadline=deadline):
            barrier.wait(timeout=30)
            return deliver(
                lambda: clerk.post_form(record_manual_path(order), form),
                tally,
                retry=False,
                deadline=deadline,
            )

        with ThreadPoolExecutor(max_workers=SAME_FORM_SENDERS) as pool:
            answers = [r.status_code if r else 0 for r in pool.map(send, range(SAME_FORM_SENDERS))]
        assert answers == [302] * SAME_FORM_SENDERS, answers

    in_sequence = make_order("80.00")
    part = {"amount": "40.00"}
    forms = [manual_form(in_sequence) | part, manual_form(in_sequence) | part]
    sent[in_sequence.pk] = [form["idempotency_key"] for form in forms]
    for form in forms:
        for _ in range(2):
            response = deliver(
                lambda form=form: clerk.post_form(record_manual_path(in_sequence), form),
                tally,
                retry=False,
                deadline=time.monotonic() + 60,
            )
            assert response is not None and response.status_code == 302, response

    orders = [*raced, in_sequence]
    summary = (
        f"same form submitted twice: {tally.requests} requests {dict(tally.statuses)}, "
        f"{len(raced)} forms raced by {SAME_FORM_SENDERS} threads, 2 forms resubmitted, "
        f"{time.monotonic() - started:.1f}s"
    )
    report(summary)
    recorded: dict[int, list[str]] = {order.pk: [] for order in orders}
    for order_id, key in Payment.objects.filter(order__in=orders).values_list(
        "order_id", "idempotency_key"
    ):
        recorded[order_id].append(key)
    # One payment per form sent, each with its form's key.
    assert {pk: sorted(keys) for pk, keys in recorded.items()} == {
        pk: sorted(keys) for pk, keys in sent.items()
    }, summary
    for order in orders:
        order.refresh_from_db()
        assert order.status == Order.Status.PAID, summary
        assert order.history.count() == len(sent[order.pk]), summary  # one entry per payment
    assert load_server.order_paid_counts([o.pk for o in orders]) == dict.fromkeys(
        (o.pk for o in orders), 1
    ), summary


# --- Two clerks refunding the same payment (issue 10) -------------------------------------


def finance_clerk(server: Server, username: str) -> AdminSession:
    """A Finance staff member (its group's permissions only), logged in to the admin."""
    create_staff_groups()
    user = get_user_model().objects.create_user(
        username, f"{username}@example.com", CLERK_PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=FINANCE))
    return server.admin_session(username, CLERK_PASSWORD)


# Why a late clerk's refund is refused: the rest is taken, or the payment is no longer listed.
REFUSED_REFUND = ("left to refund on this payment", "only succeeded payments", "valid choice")


def refund_outcome(response: requests.Response | None) -> str:
    """What the clerk saw: 'refunded', 'refused' (the dialog again, with why) or other."""
    if response is None:
        return "no answer"
    if response.status_code == 302:
        return "refunded"
    if response.status_code == 200 and any(why in response.text for why in REFUSED_REFUND):
        return "refused"
    return f"HTTP {response.status_code}"


def test_clerks_refunding_the_same_payment_never_refund_more_than_it_holds(
    load_server: Server, make_order
) -> None:
    rounds = 3
    clerks = [finance_clerk(load_server, f"finance{i}") for i in range(CLERKS)]
    tally = Tally()
    outcomes: Counter = Counter()
    started = time.monotonic()
    for _ in range(rounds):
        order = make_order("80.00")
        payment = PaymentService.record_manual(order, amount=order.total)
        path = reverse("admin:backoffice_order_refund", args=[order.pk])
        form = {
            "_form_submitted": "True",
            "payment": str(payment.pk),
            "amount": str(payment.amount),  # each clerk asks for the whole rest
            "reason": "requested_by_customer",
            "channel": "cash",
            "note": "",
        }
        barrier = threading.Barrier(CLERKS)
        deadline = time.monotonic() + 60

        def give_back(
            clerk: AdminSession, path=path, form=form, barrier=barrier, deadline=deadline
        ) -> str:
            barrier.wait(timeout=30)
            response = deliver(
                lambda: clerk.post_form(path, form), tally, retry=False, deadline=deadline
            )
            return refund_outcome(response)

        with ThreadPoolExecutor(max_workers=CLERKS) as pool:
            answers = Counter(pool.map(give_back, clerks))
        outcomes.update(answers)
        summary = (
            f"clerks refunding one payment: {tally.requests} requests {dict(tally.statuses)}, "
            f"outcomes {dict(outcomes)}, {time.monotonic() - started:.1f}s"
        )
        assert answers == {"refunded": 1, "refused": CLERKS - 1}, summary
        payment.refresh_from_db()
        assert payment.refunds.count() == 1, summary
        assert payment.refunded_amount == payment.amount, summary
        assert payment.status == Payment.Status.REFUNDED, summary
        assert Order.objects.get(pk=order.pk).status == Order.Status.REFUNDED, summary
    report(summary)
    assert tally.server_errors == 0, summary
