"""Property-based: signed webhook bodies of any shape never answer 5xx nor hurt the ledger.

Each example is POSTed through the test client with a valid signature, inside
a savepoint rolled back afterwards, so every example starts from the same
ledger: one pending order and one order paid through Stripe (``pi_paid``).
"""

import json
import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backoffice.models import Conference, Order, Payment, StripeEvent
from backoffice.services.webhooks import receive_stripe_event
from tests.hostile.invariants import assert_ledger_invariants, ledger_rows, rolled_back
from tests.stripe_fixtures import build_event, post_body, succeeded_intent

pytestmark = pytest.mark.django_db

SECRET = "whsec_hostile_properties"
PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# What a failure of ours (not of the event's content) stores: "TypeError: …".
PYTHON_ERROR = re.compile(r"^[A-Z]\w*(Error|Exception|Warning)\b")

# Values Stripe never sends where it sends them, and a few it does.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**17, max_value=10**40),
    st.integers(min_value=-(10**6), max_value=-1),
    st.floats(),  # NaN, infinities and -0.0 included
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "\u0000",
            "pi_\u0000",
            "\ud800",
            "abc",
            "usd",
            "USD",
            "jpy",
            "10000",
            "-1",
            "1e3",
            "١٢",
            "１２",
            "pi_paid",
            "ch_paid",
            "x" * 300,
        ]
    ),
    st.sampled_from([0, 1, 5000, 10000, 20000, 10**10, 10**12]),
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["id", "object", "\u0000"]), children, max_size=4
        )
    ),
    max_leaves=10,
)
EVENT_TYPES = st.sampled_from(
    [
        "payment_intent.succeeded",
        "payment_intent.processing",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.refunded",
        "customer.created",
    ]
)


@dataclass
class Ledger:
    """The conference and orders every example starts from."""

    conference: Conference
    pending: Order
    paid: Order


@pytest.fixture
def ledger(conference, make_order) -> Ledger:
    """A pending order and an order paid in full by Stripe (``pi_paid``, charge ``ch_paid``)."""
    conference.stripe_webhook_secret = SECRET
    conference.save()
    pending = make_order("100.00")
    paid = make_order("100.00", billing_email="paid@example.com")
    receive_stripe_event(
        conference=conference,
        event=build_event("payment_intent.succeeded", succeeded_intent(paid, "pi_paid")),
    )
    paid.refresh_from_db()
    assert paid.status == Order.Status.PAID
    return Ledger(conference, pending, paid)


def post_and_check(ledger: Ledger, body: str) -> None:
    """POST the signed body; check the answer, what was stored and the ledger."""
    events_before = StripeEvent.objects.count()
    rows_before = ledger_rows()

    response = post_body(Client(), ledger.conference, body, secret=SECRET)

    assert response.status_code in (200, 400), response.content[:300]
    stored = StripeEvent.objects.count() - events_before
    event(f"{response.status_code} {response.content.decode()[:30]}")
    if response.status_code == 400:
        assert stored == 0
        assert ledger_rows() == rows_before
        return
    assert stored in (0, 1)  # 0: a duplicate of an event already stored
    latest = StripeEvent.objects.order_by("-pk").first()
    if stored and latest.last_error:
        assert latest.processed_at is None
        assert not PYTHON_ERROR.match(latest.last_error), latest.last_error
        assert response.content.decode().startswith("Event stored but not applied: ")
        assert ledger_rows() == rows_before
    assert_ledger_invariants()


@PROPERTY_SETTINGS
@given(
    tree=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "id": st.text(min_size=1, max_size=20),
                "type": EVENT_TYPES,
                "data": st.fixed_dictionaries({"object": JSON}),
            }
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.one_of(st.text(max_size=20), JSON, st.just("evt_" + "9" * 260)),
                "type": EVENT_TYPES | JSON,
                "data": st.fixed_dictionaries({}, optional={"object": JSON}) | JSON,
                "livemode": JSON,
            },
        ),
    )
)
def test_any_signed_json_is_answered_200_or_400_and_never_hurts_the_ledger(ledger, tree):
    with rolled_back():
        post_and_check(ledger, json.dumps(tree))


def base_events(ledger: Ledger) -> dict[str, dict]:
    """Well-formed events of each applied type, about the ledger's orders."""
    intent = succeeded_intent(ledger.pending, "pi_new")
    charge = {
        "id": "ch_paid",
        "object": "charge",
        "payment_intent": "pi_paid",
        "currency": "usd",
        "amount": 10000,
        "amount_captured": 10000,
        "amount_refunded": 4000,
        "metadata": {},
    }
    failed = intent | {"last_payment_error": {"message": "Your card was declined."}}
    return {
        "payment_intent.succeeded": intent,
        "payment_intent.processing": intent,
        "payment_intent.payment_failed": failed,
        "payment_intent.canceled": intent,
        "charge.refunded": charge,
    }


# Where a value is replaced: the object itself, its fields, and its metadata's.
FIELDS = [
    "",
    "id",
    "currency",
    "amount",
    "amount_received",
    "amount_captured",
    "amount_refunded",
    "latest_charge",
    "charges",
    "payment_intent",
    "last_payment_error",
    "metadata",
    "metadata.order_id",
    "metadata.order_reference",
    "metadata.conference",
]


@PROPERTY_SETTINGS
@given(
    event_type=st.sampled_from(
        [
            "payment_intent.succeeded",
            "payment_intent.processing",
            "payment_intent.payment_failed",
            "payment_intent.canceled",
            "charge.refunded",
        ]
    ),
    replacements=st.lists(st.tuples(st.sampled_from(FIELDS), JSON), min_size=1, max_size=3),
    event_id=st.text(min_size=1, max_size=30),
)
def test_a_real_event_with_fields_replaced_never_answers_5xx_and_keeps_the_ledger_right(
    ledger, event_type, replacements, event_id
):
    obj = json.loads(json.dumps(base_events(ledger)[event_type]))
    for path, value in replacements:
        if not path:
            obj = value
            continue
        if not isinstance(obj, dict):
            continue
        parent, _, name = path.rpartition(".")
        target = obj.get(parent) if parent else obj
        if isinstance(target, dict):
            target[name] = value
    with rolled_back():
        post_and_check(ledger, json.dumps(build_event(event_type, obj, event_id)))


def test_valid_events_apply_and_keep_the_invariants(ledger):
    """The property's baseline: unchanged, each base event applies and answers 200."""
    for event_type, obj in base_events(ledger).items():
        with rolled_back():
            body = json.dumps(build_event(event_type, obj))
            response = post_body(Client(), ledger.conference, body, secret=SECRET)
            assert response.status_code == 200
            stored = StripeEvent.objects.order_by("-pk").first()
            assert (stored.processed_at is not None, stored.last_error) == (True, "")
            assert_ledger_invariants()
            if event_type == "charge.refunded":
                payment = Payment.objects.get(stripe_payment_intent_id="pi_paid")
                assert payment.refunded_amount == Decimal("40.00")
