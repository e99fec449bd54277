"""The staff admin (django-unfold): one module per model admin, forms in ``forms.py``."""

from backoffice.admin import conferences, orders, payments, refunds, stripe_events, tasks, users

__all__ = ["conferences", "orders", "payments", "refunds", "stripe_events", "tasks", "users"]
