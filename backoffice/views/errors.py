"""The site's 403, 404 and 500 pages, each in the look of the area where the error happened.

- The admin (``/admin/…``), for logged-in staff: the admin's frame (sidebar, header) with
  a way back to the admin home and, where the page belongs to a list, to that list.
- The attendee's checkout (``/pay/…``): the checkout's look; a payment link that was
  replaced by a newer one names its conference's contact e-mail.
- Anything else (and the admin for visitors who are not logged-in staff): the public look.

The 500 page asks nothing of the database and runs no context processor: whatever broke
the request may break those too. If even that page fails, a bare fallback is returned.
"""

import logging

from django.contrib import admin
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseServerError,
)
from django.shortcuts import render
from django.template import loader
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import requires_csrf_token

from backoffice.csp import CHECKOUT_PATH_PREFIX
from backoffice.services.email_content import contact_address
from backoffice.services.payment_links import conference_of_payment_link

logger = logging.getLogger(__name__)

ADMIN = "admin"
CHECKOUT = "checkout"
PUBLIC = "public"

# Returned when the 500 template itself cannot be rendered.
BARE_500 = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Server error</title>'
    "</head><body><h1>Something went wrong</h1><p>Please try again in a few minutes.</p>"
    "</body></html>"
)


def area_of(request: HttpRequest) -> str:
    """Which part of the site the request is for: ADMIN, CHECKOUT or PUBLIC (by its path)."""
    if request.path.startswith(reverse("admin:index")):
        return ADMIN
    if request.path_info.startswith(CHECKOUT_PATH_PREFIX):
        return CHECKOUT
    return PUBLIC


def _is_admin_staff(request: HttpRequest) -> bool:
    """Whether the request's user may use the admin (the admin's own rule)."""
    return hasattr(request, "user") and admin.site.has_permission(request)


def _list_link(request: HttpRequest) -> tuple[str, str] | None:
    """(URL, label) of the admin list the failed page belongs to, if the user may see it."""
    match = request.resolver_match
    model_admin = getattr(match.func, "model_admin", None) if match else None
    if model_admin is None or not model_admin.has_view_or_change_permission(request):
        return None
    opts = model_admin.opts
    url = reverse(f"{admin.site.name}:{opts.app_label}_{opts.model_name}_changelist")
    return url, _("Back to %(list)s") % {"list": opts.verbose_name_plural}


def _admin_page(request: HttpRequest, *, status: int, title: str, message: str) -> HttpResponse:
    """An error page inside the admin's frame, with the ways back."""
    list_link = _list_link(request)
    context = {
        **admin.site.each_context(request),
        "title": title,
        "message": message,
        "status": status,
        "list_url": list_link[0] if list_link else "",
        "list_label": list_link[1] if list_link else "",
    }
    return render(request, "admin/error.html", context, status=status)


def _admin_home(request: HttpRequest) -> str:
    """The admin home's URL when the request is for the admin, else ""."""
    return reverse("admin:index") if area_of(request) == ADMIN else ""


@requires_csrf_token
def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: the staff member may not open this page; show where they can go."""
    if area_of(request) == ADMIN and _is_admin_staff(request):
        return _admin_page(
            request,
            status=403,
            title=_("You do not have access to this page"),
            message=_(
                "Your account does not have the permission this page needs. If you need it "
                "for your work, ask an administrator to add it to your account or group."
            ),
        )
    return HttpResponseForbidden(
        loader.render_to_string("403.html", {"admin_home": _admin_home(request)})
    )


@requires_csrf_token
def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: nothing here; a pay link names whom to ask when its conference is known."""
    where = area_of(request)
    if where == ADMIN and _is_admin_staff(request):
        return _admin_page(
            request,
            status=404,
            title=_("Page not found"),
            message=_(
                "There is nothing at this address. It may have been mistyped, or what it "
                "showed has been deleted."
            ),
        )
    if where == CHECKOUT:
        match = request.resolver_match
        conference = conference_of_payment_link(match.kwargs.get("token", "")) if match else None
        context = {
            "conference": conference,
            "contact_email": contact_address(conference) if conference else "",
        }
        return HttpResponseNotFound(loader.render_to_string("checkout/404.html", context))
    return HttpResponseNotFound(
        loader.render_to_string("404.html", {"admin_home": _admin_home(request)})
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a page that needs no database, no session and no context processor."""
    try:
        where = area_of(request)
        context = {
            "admin_home": reverse("admin:index") if where == ADMIN else "",
            "checkout": where == CHECKOUT,
        }
        # No request: the context processors would read the session and the user.
        return HttpResponseServerError(loader.render_to_string("500.html", context))
    except Exception:
        # The original error is already logged; this one would otherwise hide the page.
        logger.exception("The 500 page could not be rendered; answered the bare fallback")
        return HttpResponseServerError(BARE_500)
