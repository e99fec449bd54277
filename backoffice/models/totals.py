"""Totals the ledger keeps up to date for the dashboard."""

from django.db import models

from backoffice.models.conference import Conference
from backoffice.models.orders import Order
from backoffice.models.payments import ZERO, Payment

# Sums over many ledger rows: room for a conference's whole takings.
TOTAL = {"max_digits": 18, "decimal_places": 2}


class LedgerTotal(models.Model):
    """Money collected per conference, local day of the payment and method, kept by the ledger.

    Every ledger write adds its change in the same transaction (``settle_order``
    calls ``services.ledger_totals.recount_order``); ``check_ledger_totals``
    recomputes them from the ledger. ``refunded`` counts lost disputes as money
    out, like the dashboard always did. The currency is the conference's.
    """

    conference = models.ForeignKey(Conference, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="The payment's creation day in the site's time zone.")
    method = models.CharField(max_length=10, choices=Payment.Method.choices)
    payments = models.IntegerField(default=0, help_text="Succeeded and refunded payments.")
    collected = models.DecimalField(**TOTAL, default=ZERO)
    refunded = models.DecimalField(**TOTAL, default=ZERO)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conference", "day", "method"], name="ledger_total_unique_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conference_id} {self.day} {self.method}"


class OrderTotal(models.Model):
    """How many orders a conference has in each status, and what its pending ones still owe."""

    conference = models.ForeignKey(Conference, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=20, choices=Order.Status.choices)
    orders = models.IntegerField(default=0)
    balance = models.DecimalField(
        **TOTAL, default=ZERO, help_text="Balance due, summed over the pending orders."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conference", "status"], name="order_total_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.conference_id} {self.status}"
