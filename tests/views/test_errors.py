"""The 403, 404 and 500 pages (backoffice/views/errors.py), as staff and attendees see them."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connections
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.urls import path, reverse

from backoffice.services.payment import PaymentService
from backoffice.views import errors
from config import urls as project_urls

pytestmark = pytest.mark.django_db


def crash(request: HttpRequest) -> None:
    """A view with a bug, so the test can see the 500 page the site answers with."""
    raise RuntimeError("a bug")


# This module is also the URLconf of the 500 tests: the project's URLs and error
# handlers, plus a crashing view in each area of the site.
urlpatterns = [
    path("admin/crash/", crash),
    path("pay/<slug:token>/crash/", crash),
    path("crash/", crash),
    *project_urls.urlpatterns,
]
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


@pytest.fixture(autouse=True)
def production_error_pages(settings) -> None:
    """Django shows its technical pages instead of the handlers while DEBUG is on."""
    settings.DEBUG = False


@pytest.fixture
def desk_client() -> Client:
    """A client logged in as front-desk staff (orders only, nothing of Finance's)."""
    user = get_user_model().objects.create_user(
        username="dana.desk", password="dana-pass-123", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="backoffice",
            codename__in=("view_order", "record_manual_payment", "mark_comp"),
        )
    )
    client = Client()
    client.force_login(user)
    return client


def links(html: str) -> dict[str, str]:
    """The page's links as {text: href}, text with its whitespace and icon names dropped."""
    found = {}
    for href, inner in re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', html, re.S):
        text = re.sub(r"<span[^>]*>[^<]*</span>|<[^>]+>", " ", inner)
        found[" ".join(text.split())] = href
    return found


def test_desk_user_on_a_finance_list_gets_403_inside_the_admin_frame(desk_client):
    response = desk_client.get(reverse("admin:backoffice_payment_changelist"))

    assert response.status_code == 403
    html = response.content.decode()
    assert "You do not have access to this page" in html
    assert 'id="error-page"' in html
    page_links = links(html)
    assert page_links["Back to the admin home"] == reverse("admin:index")
    # The sidebar is there, with what the desk may open and without what it may not.
    assert page_links["Orders"] == reverse("admin:backoffice_order_changelist")
    assert reverse("admin:backoffice_payment_changelist") not in page_links.values()
    assert "Back to payments" not in page_links


def test_forbidden_page_of_a_list_the_user_may_see_links_back_to_it(desk_client, make_order):
    order = make_order("10.00")

    response = desk_client.get(reverse("admin:backoffice_order_delete", args=[order.pk]))

    assert response.status_code == 403
    assert links(response.content.decode())["Back to orders"] == reverse(
        "admin:backoffice_order_changelist"
    )


def test_unknown_admin_address_is_a_404_inside_the_admin_frame(admin_client):
    response = admin_client.get("/admin/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html
    assert links(html)["Back to the admin home"] == reverse("admin:index")
    assert links(html)["Orders"] == reverse("admin:backoffice_order_changelist")


def test_missing_order_in_an_order_action_links_back_to_the_orders(desk_client):
    response = desk_client.get(reverse("admin:backoffice_order_record_manual", args=[999_999]))

    assert response.status_code == 404
    page_links = links(response.content.decode())
    assert page_links["Back to orders"] == reverse("admin:backoffice_order_changelist")
    assert page_links["Back to the admin home"] == reverse("admin:index")


def test_admin_403_for_a_user_who_is_not_staff_shows_no_admin_frame(attendee):
    request = RequestFactory().get("/admin/backoffice/order/")
    request.user = attendee

    response = errors.forbidden(request)

    assert response.status_code == 403
    html = response.content.decode()
    assert "Access denied" in html
    assert 'id="error-page"' not in html
    assert "Orders" not in html
    assert links(html)["Go to the back office"] == reverse("admin:index")


def test_wrong_pay_link_shows_the_checkout_look_without_naming_any_conference(client, make_order):
    order = make_order("10.00")
    order.conference.contact_email = "help@pycon.example"
    order.conference.save()

    response = client.get(reverse("backoffice:pay", args=["not-a-token"]))

    assert response.status_code == 404
    html = response.content.decode()
    assert "/static/backoffice/checkout.css" in html
    assert "This payment link is not valid" in html
    assert "reply to the e-mail that brought you the link" in html
    assert order.conference.name not in html
    assert "help@pycon.example" not in html
    assert order.reference not in html


def test_regenerated_pay_link_names_the_conference_and_its_contact_email(client, make_order):
    order = make_order("10.00")
    order.conference.contact_email = "help@pycon.example"
    order.conference.save()
    old_token = order.payment_token
    PaymentService.regenerate_payment_link(order)

    for url in (
        reverse("backoffice:pay", args=[old_token]),
        reverse("backoffice:pay_complete", args=[old_token]),
    ):
        response = client.get(url)

        assert response.status_code == 404
        html = response.content.decode()
        assert "This payment link is no longer valid" in html
        assert "PyCon Test" in html
        assert '<a href="mailto:help@pycon.example">help@pycon.example</a>' in html
        assert order.reference not in html
        assert order.payment_token not in html


def test_regenerated_pay_link_without_a_contact_email_names_the_sender_address(
    client, make_order, settings
):
    settings.DEFAULT_FROM_EMAIL = "Registrations <registration@pycon.example>"
    order = make_order("10.00")
    old_token = order.payment_token
    PaymentService.regenerate_payment_link(order)

    html = client.get(reverse("backoffice:pay", args=[old_token])).content.decode()

    assert "mailto:registration@pycon.example" in html


def test_unknown_public_address_is_a_404_in_the_public_look(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html
    assert "/static/backoffice/checkout.css" in html
    assert "Go to the back office" not in html


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("url", "shown", "not_shown"),
    [
        ("/admin/crash/", "Back to the admin home", "do not pay twice"),
        ("/pay/some-token/crash/", "do not pay twice", "Back to the admin home"),
        ("/crash/", "try again in a few minutes", "Back to the admin home"),
    ],
)
def test_crash_answers_the_500_page_of_its_area(url, shown, not_shown):
    user = get_user_model().objects.create_superuser(username="avery.admin", password="x-pass-123")
    client = Client(raise_request_exception=False)
    client.force_login(user)

    response = client.get(url)

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert shown in html
    assert not_shown not in html
    assert user.username not in html  # no request context: the page names nobody


def test_500_page_renders_with_the_database_unreachable(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the 500 page touched the database")

    monkeypatch.setattr(connections["default"], "cursor", refuse)
    monkeypatch.setattr(connections["default"], "ensure_connection", refuse)
    request = RequestFactory().get("/admin/backoffice/order/")  # no session, no user

    response = errors.server_error(request)

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
    assert "Back to the admin home" in response.content.decode()


def test_500_page_falls_back_to_bare_html_if_its_template_fails(settings, caplog):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [], "APP_DIRS": False}]

    response = errors.server_error(RequestFactory().get("/pay/x/"))

    assert response.status_code == 500
    assert response.content.decode() == errors.BARE_500
    assert "The 500 page could not be rendered" in caplog.text
