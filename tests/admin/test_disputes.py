"""Disputes ledger admin: a read-only list, its search and its permission.

Disputes are made by ``apply_stripe_dispute`` as Stripe reports them (the
only way one is ever written).
"""

from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice.models import Dispute, Payment
from backoffice.services.payment import apply_payment_intent, apply_stripe_dispute
from backoffice.stripe_client import parse_dispute, parse_payment_intent
from tests.ledger_factories import make_staff
from tests.stripe_fixtures import dispute_object, succeeded_intent

pytestmark = pytest.mark.django_db
LIST_URL = reverse("admin:backoffice_dispute_changelist")
NBSP = "\u00a0"


def disputed(conference, order, name: str, status: str = "needs_response") -> Dispute:
    """Pay the order by card (intent pi_<name>) and have Stripe dispute it (dp_<name>)."""
    intent = parse_payment_intent(succeeded_intent(order, f"pi_{name}"))
    apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)
    obj = dispute_object(f"pi_{name}", f"ch_{name}", 10000, status=status, dispute_id=f"dp_{name}")
    return apply_stripe_dispute(conference, parse_dispute(obj))


@pytest.fixture
def finance(client):
    """A logged-in staff member who may view disputes."""
    client.force_login(make_staff("finance", "backoffice.view_dispute"))
    return client


def listed(response) -> list[str]:
    """Stripe ids of the disputes on a list page, in order."""
    assert response.status_code == 200
    return [dispute.stripe_dispute_id for dispute in response.context["cl"].result_list]


def test_list_shows_the_dispute_columns(finance, conference, make_order):
    order = make_order("100.00")
    dispute = disputed(conference, order, "one", status="lost")

    html = finance.get(LIST_URL).content.decode().replace(NBSP, " ")

    for text in (order.reference, f">pi_one</a> #{dispute.payment_id}", "100.00 USD", "Lost",
                 "Fraudulent", ">dp_one</a>"):  # fmt: skip
        assert text in html


@pytest.mark.parametrize(
    ("term", "expected"),
    [("dp_two", ["dp_two"]), ("pi_one", ["dp_one"]), ("ch_two", ["dp_two"])],
)
def test_search_finds_a_dispute_by_its_stripe_ids(finance, conference, make_order, term, expected):
    disputed(conference, make_order(), "one")
    disputed(conference, make_order(), "two")

    assert listed(finance.get(LIST_URL, {"q": term})) == expected


def test_search_finds_a_dispute_by_order_reference(finance, conference, make_order):
    order = make_order()
    disputed(conference, order, "one")
    disputed(conference, make_order(), "two")

    assert listed(finance.get(LIST_URL, {"q": order.reference.lower()})) == ["dp_one"]


def test_nobody_can_add_change_or_delete_disputes(client, conference, make_order):
    dispute = disputed(conference, make_order(), "one")
    client.force_login(make_staff("root", superuser=True))

    assert client.get(reverse("admin:backoffice_dispute_add")).status_code == 403
    change = reverse("admin:backoffice_dispute_change", args=[dispute.pk])
    assert client.post(change, {"amount": "1.00"}).status_code in (302, 403)
    delete = reverse("admin:backoffice_dispute_delete", args=[dispute.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    dispute.refresh_from_db()
    assert dispute.amount == Decimal("100.00")


def test_the_list_needs_the_view_dispute_permission(client, conference, make_order):
    disputed(conference, make_order(), "one")
    client.force_login(make_staff("desk", "backoffice.view_order", "backoffice.view_refund"))
    assert client.get(LIST_URL).status_code == 403
    assert LIST_URL not in client.get(reverse("admin:index")).content.decode()

    client.force_login(make_staff("finance", "backoffice.view_dispute"))
    assert client.get(LIST_URL).status_code == 200
    assert LIST_URL in client.get(reverse("admin:index")).content.decode()


def test_list_links_the_dispute_and_its_payment_to_stripe_s_dashboard(
    finance, conference, make_order
):
    disputed(conference, make_order("100.00"), "one")

    html = finance.get(LIST_URL).content.decode()

    assert 'href="https://dashboard.stripe.com/test/disputes/dp_one"' in html
    assert 'href="https://dashboard.stripe.com/test/payments/pi_one"' in html
