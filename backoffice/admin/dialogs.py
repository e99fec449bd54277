"""Responses for unfold's dialog actions: show the form again, or close and go back."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render


def render_dialog(request: HttpRequest, dialog: dict[str, Any], form: forms.Form) -> HttpResponse:
    """Render an action's dialog again with the form's errors (unfold's own template)."""
    return render(
        request,
        "unfold/helpers/dialog.html",
        {"dialog": dialog, "form": form, "form_submit_text": dialog.get("form_submit_text", "")},
    )


def add_service_error(form: forms.Form, error: ValidationError) -> None:
    """Show a service's refusal on the form: on the field it names, else above the fields."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def close_dialog(request: HttpRequest, url: str) -> HttpResponse:
    """Send the browser to ``url``: htmx reads the HX-Redirect header, others get a 302."""
    if request.headers.get("HX-Request"):
        return HttpResponse(headers={"HX-Redirect": url})
    return HttpResponseRedirect(url)
