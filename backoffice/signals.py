"""Domain signals."""

from django.dispatch import Signal

# Sent once per order when it becomes PAID, after the transaction commits.
# Keyword arguments: ``order`` (the Order) and ``user`` (its attendee).
order_paid = Signal()
