"""Builders for payments, refunds and finance staff, shared by the finance tests."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Sum

from backoffice.models import ZERO, Order, Payment, Refund
from backoffice.services.ledger_totals import recount_order


def backdate[Row: Payment | Refund](row: Row, created_at: object) -> Row:
    """Give a ledger row another creation time (``auto_now_add`` ignores the one passed)."""
    if created_at is not None:
        type(row).objects.filter(pk=row.pk).update(created_at=created_at)
        row.refresh_from_db()
    return row


def make_payment(order: Order, amount: str = "10.00", **fields: object) -> Payment:
    """Insert a ledger row directly (tests need states the services never produce together)."""
    fields.setdefault("method", Payment.Method.MANUAL)
    fields.setdefault("status", Payment.Status.SUCCEEDED)
    if fields["status"] == Payment.Status.REFUNDED:
        # The ledger's invariant: a REFUNDED payment was refunded in full.
        fields.setdefault("refunded_amount", Decimal(amount))
    created_at = fields.pop("created_at", None)
    payment = backdate(
        Payment.objects.create(order=order, amount=Decimal(amount), **fields), created_at
    )
    recount_order(order)  # the dashboard's totals follow the ledger, as after a service's write
    return payment


def make_refund(payment: Payment, amount: str = "5.00", **fields: object) -> Refund:
    """Insert a Refund row directly and keep ``payment.refunded_amount`` equal to its refunds.

    NOTE: ``PaymentService.refund`` arrives with branch issue10-core; until it
    lands the finance tests build refunds here. The row keeps the ledger's
    invariant the service will keep: ``refunded_amount`` is the sum of the
    payment's SUCCEEDED refunds, and a payment refunded in full is REFUNDED.
    """
    fields.setdefault("status", Refund.Status.SUCCEEDED)
    fields.setdefault("reason", Refund.Reason.REQUESTED_BY_CUSTOMER)
    created_at = fields.pop("created_at", None)
    refund = backdate(
        Refund.objects.create(payment=payment, amount=Decimal(amount), **fields), created_at
    )
    succeeded = payment.refunds.filter(status=Refund.Status.SUCCEEDED)
    payment.refunded_amount = succeeded.aggregate(s=Sum("amount"))["s"] or ZERO
    if payment.refunded_amount == payment.amount:
        payment.status = Payment.Status.REFUNDED
    payment.save(update_fields=["refunded_amount", "status", "updated_at"])
    recount_order(payment.order)
    return refund


def make_staff(username: str, *perms: str, superuser: bool = False):  # noqa: ANN201
    """A staff user holding the given ``app_label.codename`` permissions."""
    user = get_user_model().objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password="pass-123-word",
        is_staff=True,
        is_superuser=superuser,
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user
