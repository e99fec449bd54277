"""send_order_paid: sends what a killed worker left due, once, and says how many."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from backoffice.services.payment import PaymentService
from backoffice.signals import order_paid

pytestmark = pytest.mark.django_db


def test_send_order_paid_command_reports_what_it_sent(
    make_order, django_capture_on_commit_callbacks, capsys
):
    received = []
    order = make_order("10.00")
    with django_capture_on_commit_callbacks(execute=False):  # the worker died after the commit
        PaymentService.record_manual(order, amount=Decimal("10.00"))

    def receiver(sender, order, **kwargs):
        received.append(order.pk)

    order_paid.connect(receiver)
    try:
        call_command("send_order_paid")
        call_command("send_order_paid")
    finally:
        order_paid.disconnect(receiver)

    assert capsys.readouterr().out.splitlines() == [
        "Sent order_paid for 1 order.",
        "Sent order_paid for 0 orders.",
    ]
    assert received == [order.pk]
