"""The admin index as a finance dashboard (unfold's DASHBOARD_CALLBACK)."""

from typing import Any

from django.http import HttpRequest


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """Add the finance figures to the admin index's context."""
    return context
