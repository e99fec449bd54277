"""Retired payment links (backoffice/services/payment_links.py)."""

import pytest

from backoffice.models import RetiredPaymentLink
from backoffice.services.payment import PaymentService
from backoffice.services.payment_links import (
    conference_of_payment_link,
    token_digest,
)

pytestmark = pytest.mark.django_db


def test_regenerating_keeps_only_a_digest_of_the_old_token(make_order):
    order = make_order("10.00")
    old_token = order.payment_token

    PaymentService.regenerate_payment_link(order)

    retired = RetiredPaymentLink.objects.get(order=order)
    assert retired.token_digest == token_digest(old_token)
    stored = RetiredPaymentLink.objects.filter(pk=retired.pk).values().get()
    assert not any(old_token in str(value) for value in stored.values())


def test_every_regenerated_token_names_the_conference_but_the_current_one_does_not(make_order):
    order = make_order("10.00")
    first = order.payment_token
    PaymentService.regenerate_payment_link(order)
    second = order.payment_token
    PaymentService.regenerate_payment_link(order)

    assert conference_of_payment_link(first) == order.conference
    assert conference_of_payment_link(second) == order.conference
    assert conference_of_payment_link(order.payment_token) is None
    assert conference_of_payment_link("never-issued") is None
    assert conference_of_payment_link("") is None
