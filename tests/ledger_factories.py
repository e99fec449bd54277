"""Builders for payments and finance staff, shared by the finance tests."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from backoffice.models import Order, Payment


def make_payment(order: Order, amount: str = "10.00", **fields: object) -> Payment:
    """Insert a ledger row directly (tests need states the services never produce together)."""
    fields.setdefault("method", Payment.Method.MANUAL)
    fields.setdefault("status", Payment.Status.SUCCEEDED)
    created_at = fields.pop("created_at", None)
    payment = Payment.objects.create(order=order, amount=Decimal(amount), **fields)
    if created_at is not None:
        Payment.objects.filter(pk=payment.pk).update(created_at=created_at)
        payment.refresh_from_db()
    return payment


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
