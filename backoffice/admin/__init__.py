"""The staff admin (django-unfold): one module per model admin, forms in ``forms.py``."""

from backoffice.admin import (
    conferences,
    disputes,
    export_files,
    order_emails,
    orders,
    payments,
    refunds,
    schedule,
    stripe_events,
    tasks,
    users,
)

__all__ = [
    "conferences",
    "disputes",
    "export_files",
    "order_emails",
    "orders",
    "payments",
    "refunds",
    "schedule",
    "stripe_events",
    "tasks",
    "users",
]
