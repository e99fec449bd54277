"""Rules for orders imported from another registration system (CSV/XLSX).

An import only creates orders, PENDING or CANCELLED: money that was already
collected elsewhere is recorded afterwards as payments, so the ledger stays
the only source of what was paid.
"""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from backoffice.models import ZERO, Order, OrderLineItem
from backoffice.money import has_valid_precision

IMPORTABLE_STATUSES = (Order.Status.PENDING, Order.Status.CANCELLED)
IMPORTED_LINE_ITEM = "Imported registration"


def parse_status(value: object, errors: dict[str, list[str]]) -> str:
    """Return the status code for a status cell (code or label; blank is pending)."""
    text = "" if value is None else str(value).strip()
    if not text:
        return Order.Status.PENDING
    for status in Order.Status:
        if text.lower() in (status.value, status.label.lower()):
            if status in IMPORTABLE_STATUSES:
                return status.value
            break
    allowed = ", ".join(str(status.label) for status in IMPORTABLE_STATUSES)
    errors.setdefault("status", []).append(
        f"Status “{text}” cannot be imported; use one of: {allowed}. "
        "Record money already collected as payments after the import."
    )
    return text


def attendee_for_import(*, email: str, name: str = "") -> AbstractBaseUser:
    """Return the user account with this email, creating one (no password) when none exists."""
    email = (email or "").strip()
    if not email:
        raise ValidationError({"billing_email": "An email address is required."})
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"billing_email": f"“{email}” is not a valid email."}) from None
    user_model = get_user_model()
    existing = user_model.objects.filter(email__iexact=email).order_by("pk").first()
    if existing is not None:
        return existing
    first, _, last = (name or "").strip().partition(" ")
    username = email.lower()
    suffix = 1
    while user_model.objects.filter(username=username).exists():
        suffix += 1
        username = f"{email.lower()}#{suffix}"
    user = user_model(username=username[:150], email=email, first_name=first[:150])
    user.last_name = last[:150]
    user.set_unusable_password()
    user.save()
    return user


def check_imported_order(order: Order) -> None:
    """Refuse amounts that are negative, too precise for the currency, or don't add up."""
    errors: dict[str, list[str]] = {}
    currency = order.conference.currency if order.conference_id else None
    amounts = {
        "subtotal": order.subtotal,
        "discount_amount": order.discount_amount,
        "total": order.total,
    }
    for field, amount in amounts.items():
        if amount is None:
            errors.setdefault(field, []).append("An amount is required.")
        elif amount < ZERO:
            errors.setdefault(field, []).append("Amounts cannot be negative.")
        elif currency and not has_valid_precision(amount, currency):
            errors.setdefault(field, []).append(
                f"{amount} has more decimal places than {currency} allows."
            )
    if not errors and order.subtotal - order.discount_amount != order.total:
        errors["total"] = [
            f"The total {order.total} is not the subtotal {order.subtotal} "
            f"minus the discount {order.discount_amount}."
        ]
    if errors:
        raise ValidationError(errors)


def add_imported_line_item(order: Order) -> OrderLineItem:
    """Give a newly imported order one line item carrying its subtotal."""
    subtotal = order.subtotal or Decimal("0.00")
    return OrderLineItem.objects.create(
        order=order,
        description=IMPORTED_LINE_ITEM,
        quantity=1,
        unit_price=subtotal,
        line_total=subtotal,
    )
