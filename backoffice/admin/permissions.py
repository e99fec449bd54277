"""Admin actions need the right to see their model first, then their own permission.

An action's dialog shows what it acts on (an order's attendee, total and
balance; a Stripe event's error), so whoever may not see the objects must not
open it, by GET or by POST. ``action`` wraps unfold's ``@action`` so that this
is checked before anything else (before unfold builds the dialog's form), for
every detail, list, row and bulk action declared with it: the rule lives here
once. "See" is the admin's ``has_view_permission`` (the view permission, or the
change permission, which Django's admin always counts as allowing to view).
Exports and imports get the same rule in ``backoffice.admin.exporting``.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from unfold.decorators import action as unfold_action


def action(**options: Any) -> Callable[[Callable], Callable]:
    """unfold's ``@action(...)``, refused (403) to users who may not view the model."""

    def decorate(func: Callable) -> Callable:
        declared = unfold_action(**options)(func)

        @wraps(declared)  # keeps unfold's attributes: permissions, dialog, icon…
        def checked(
            model_admin: ModelAdmin, request: HttpRequest, *args: Any, **kwargs: Any
        ) -> HttpResponse | None:
            if not model_admin.has_view_permission(request):
                raise PermissionDenied
            return declared(model_admin, request, *args, **kwargs)

        checked.requires_view_permission = True
        return checked

    return decorate
