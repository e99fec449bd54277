"""Template filters for the attendee checkout pages."""

from decimal import Decimal

from django import template

from backoffice.models import Order

register = template.Library()


@register.filter
def money(amount: Decimal, order: Order) -> str:
    """Format an amount in the order's currency: '50.00 USD', '5000 JPY'."""
    return order.format(amount)
