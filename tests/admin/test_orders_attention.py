"""Attention in the admin: the flag (read-only, cleared by "Resolve attention") and the one
"Needs attention" list (a preset of the orders list, linked from the sidebar and the dashboard).
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import SUCCESS, get_messages
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.attention import BADGE_CACHE_KEY
from backoffice.services.payment import PaymentService, apply_payment_intent
from backoffice.stripe_client import parse_payment_intent
from tests.admin.test_order_history import order_form_data
from tests.ledger_factories import make_staff
from tests.stripe_fixtures import succeeded_intent

pytestmark = pytest.mark.django_db


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def resolve_url(order: Order) -> str:
    return reverse("admin:backoffice_order_resolve_attention", args=[order.pk])


@pytest.fixture
def overpaid(conference, make_order) -> Order:
    """A 100.00 order paid 30.00 in cash, then 100.00 by card: flagged as overpaid."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"), channel=Payment.Channel.CASH)
    intent = parse_payment_intent(succeeded_intent(order, "pi_over"))
    apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)
    order.refresh_from_db()
    assert order.needs_attention
    return order


@pytest.fixture
def supervisor():
    """Staff who may view and change orders (the permission "Resolve attention" needs)."""
    return make_staff("supervisor", "backoffice.view_order", "backoffice.change_order")


@pytest.fixture
def supervisor_client(supervisor) -> Client:
    client = Client()
    client.force_login(supervisor)
    return client


def test_the_button_shows_only_on_a_flagged_order(supervisor_client, overpaid, make_order):
    flagged = supervisor_client.get(change_url(overpaid)).content.decode()
    calm = make_order("100.00")
    unflagged = supervisor_client.get(change_url(calm)).content.decode()

    assert resolve_url(overpaid) in flagged
    assert resolve_url(calm) not in unflagged


def test_staff_who_may_not_change_orders_see_no_button_and_are_refused(desk_client, overpaid):
    page = desk_client.get(change_url(overpaid)).content.decode()

    response = desk_client.post(resolve_url(overpaid), {"_form_submitted": "True", "note": "x"})

    assert resolve_url(overpaid) not in page
    assert response.status_code == 403
    overpaid.refresh_from_db()
    assert overpaid.needs_attention


def test_the_dialog_shows_why_the_order_was_flagged(supervisor_client, overpaid):
    html = supervisor_client.get(resolve_url(overpaid), headers={"HX-Request": "true"})

    text = html.content.decode().replace("\u00a0", " ")
    assert "Overpaid by 30.00 USD" in text
    assert 'name="note"' in text


def test_resolving_clears_the_flag_with_the_note_in_the_timeline(
    supervisor_client, supervisor, overpaid
):
    response = supervisor_client.post(
        resolve_url(overpaid), {"_form_submitted": "True", "note": "Refunded 30.00 in cash"}
    )

    assert response.status_code == 302
    assert response["Location"] == change_url(overpaid)
    assert [(m.level, str(m)) for m in get_messages(response.wsgi_request)] == [
        (SUCCESS, f"{overpaid.reference} no longer needs attention.")
    ]
    overpaid.refresh_from_db()
    assert (overpaid.needs_attention, overpaid.attention_reason) == (False, "")
    entry = overpaid.history.last()
    assert (entry.action, entry.actor) == (OrderHistoryEntry.Action.ATTENTION_RESOLVED, supervisor)
    assert entry.message.startswith("Refunded 30.00 in cash")
    assert LogEntry.objects.get(object_id=str(overpaid.pk)).change_message == (
        "Resolved the attention flag."
    )
    page = supervisor_client.get(change_url(overpaid)).content.decode()
    assert "Attention resolved" in page and "Refunded 30.00 in cash" in page  # the timeline
    assert resolve_url(overpaid) not in page  # nothing left to resolve


def test_resolving_without_a_note_is_a_form_error(supervisor_client, overpaid):
    response = supervisor_client.post(resolve_url(overpaid), {"_form_submitted": "True"})

    assert response.status_code == 200
    assert "Say what was done about it: a note is required." in response.content.decode()
    overpaid.refresh_from_db()
    assert overpaid.needs_attention


def test_resolving_an_order_someone_just_resolved_is_refused_on_the_form(
    supervisor_client, supervisor, overpaid
):
    PaymentService.resolve_attention(overpaid, note="Done already", staff_user=supervisor)

    response = supervisor_client.post(
        resolve_url(overpaid), {"_form_submitted": "True", "note": "Me too"}
    )

    assert response.status_code == 200
    assert f"{overpaid.reference} does not need attention." in response.content.decode()
    assert overpaid.history.filter(action="attention_resolved").count() == 1


def test_the_order_form_does_not_edit_the_flag(admin_client, overpaid):
    """A forged POST turning the flag off (and the reason blank) changes neither."""
    html = admin_client.get(change_url(overpaid)).content.decode()
    assert 'name="needs_attention"' not in html
    assert 'name="attention_reason"' not in html
    data = order_form_data(html)
    data.pop("needs_attention", None)  # an unticked checkbox is not sent
    data["attention_reason"] = ""
    data["billing_name"] = "Ada King"
    reason = overpaid.attention_reason

    response = admin_client.post(change_url(overpaid), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    overpaid.refresh_from_db()
    assert overpaid.billing_name == "Ada King"  # the form was saved
    assert (overpaid.needs_attention, overpaid.attention_reason) == (True, reason)


def test_the_order_form_does_not_raise_the_flag_either(admin_client, make_order):
    order = make_order("100.00")
    data = order_form_data(admin_client.get(change_url(order)).content.decode())
    data |= {"needs_attention": "on", "attention_reason": "Set by hand"}

    assert admin_client.post(change_url(order), data).status_code == 302

    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reason) == (False, "")


# --- The one "Needs attention" list: a preset of the orders list -------------------------

CHANGELIST = reverse("admin:backoffice_order_changelist")
PRESET = f"{CHANGELIST}?attention=yes"


def stale_card_attempt(order: Order, intent_id: str = "pi_stale") -> Payment:
    """A card attempt left pending for 47 minutes (what initiate_payment leaves behind).

    Written directly so the admin tests need no localstripe; the selector's tests
    (tests/services/test_attention.py) build the same state through the checkout.
    """
    payment = Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        status=Payment.Status.PENDING,
        amount=order.total,
        stripe_payment_intent_id=intent_id,
    )
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(minutes=47))
    return payment


def text_of(response) -> str:
    return response.content.decode().replace("\u00a0", " ")


def result_list(response) -> str:
    """The orders table of a list page (not the messages or the filters)."""
    html = text_of(response)
    start = html.index('id="result_list"')
    return html[start : html.index("</table>", start)]


def test_the_preset_lists_each_order_needing_attention_with_why(
    supervisor_client, overpaid, make_order
):
    stale = make_order("100.00")
    stale_card_attempt(stale)
    calm = make_order("100.00")

    html = result_list(supervisor_client.get(PRESET))

    assert overpaid.reference in html and stale.reference in html
    assert calm.reference not in html
    assert "column-attention_reasons_column" in html  # the reasons column
    assert "Overpaid by 30.00 USD" in html
    assert "Stripe payment pi_stale pending for 47 minutes; re-sync it from Stripe." in html


def test_the_preset_shows_why_in_place_of_total_and_paid(supervisor_client, overpaid):
    preset = result_list(supervisor_client.get(PRESET))
    plain = result_list(supervisor_client.get(CHANGELIST))

    thead = re.compile(r'<th[^>]*class="[^"]*column-(\w+)')
    assert thead.findall(preset)[-1] == "attention_reasons_column"
    for column in ("total_display", "paid_display"):
        assert f"column-{column}" in plain
        assert f"column-{column}" not in preset
    assert "column-balance_display" in preset


def test_the_plain_list_has_no_reasons_column(supervisor_client, overpaid):
    html = result_list(supervisor_client.get(CHANGELIST))

    assert overpaid.reference in html
    assert "column-attention_reasons_column" not in html


def test_an_order_leaves_the_preset_once_its_attention_is_resolved(
    supervisor_client, overpaid, make_order
):
    still = make_order("100.00")
    stale_card_attempt(still)
    supervisor_client.post(resolve_url(overpaid), {"_form_submitted": "True", "note": "Refunded"})

    rows = result_list(supervisor_client.get(PRESET))

    assert still.reference in rows
    assert overpaid.reference not in rows
    assert overpaid.history.last().action == OrderHistoryEntry.Action.ATTENTION_RESOLVED


def test_the_preset_costs_the_same_queries_for_more_orders(supervisor_client, make_order):
    def preset_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert supervisor_client.get(PRESET).status_code == 200
        return len(queries)

    stale_card_attempt(make_order("100.00"), "pi_0")
    preset_queries()  # warm caches (content types, sessions)
    one = preset_queries()
    for index in range(1, 8):
        stale_card_attempt(make_order("100.00"), f"pi_{index}")

    assert preset_queries() == one


def test_the_order_page_says_why_it_needs_attention_now(supervisor_client, make_order):
    order = make_order("100.00")
    stale_card_attempt(order)

    html = text_of(supervisor_client.get(change_url(order)))

    assert "Needs attention now" in html
    assert "Stripe payment pi_stale pending for 47 minutes" in html


def sidebar_badge(html: str) -> str | None:
    """The badge beside the sidebar's "Needs attention" link, if any."""
    link = html.index(f'href="{PRESET}"')
    item = html[link : html.index("</a>", link)]
    badge = re.search(r'class="sidebar-badge[^"]*"\s*>\s*([^<]*?)\s*<', item)
    return badge.group(1) if badge else None


def test_the_sidebar_links_the_preset_with_a_count(supervisor_client, overpaid, make_order):
    stale_card_attempt(make_order("100.00"))

    html = supervisor_client.get(reverse("admin:index")).content.decode()

    assert sidebar_badge(html) == "2"


def test_the_sidebar_badge_reuses_its_count_for_the_configured_seconds(
    settings, supervisor_client, overpaid, make_order
):
    settings.BACKOFFICE_ATTENTION_BADGE_SECONDS = 30
    cache.delete(BADGE_CACHE_KEY)
    assert sidebar_badge(supervisor_client.get(reverse("admin:index")).content.decode()) == "1"
    stale_card_attempt(make_order("100.00"))

    html = supervisor_client.get(reverse("admin:index"))

    assert sidebar_badge(html.content.decode()) == "1"  # counted 0 seconds ago
    cache.delete(BADGE_CACHE_KEY)  # the 30 seconds are over
    assert sidebar_badge(supervisor_client.get(reverse("admin:index")).content.decode()) == "2"


def test_the_sidebar_shows_no_badge_when_nothing_needs_attention(supervisor_client, make_order):
    make_order("100.00")

    html = supervisor_client.get(reverse("admin:index")).content.decode()

    assert sidebar_badge(html) is None


def test_staff_who_may_not_see_orders_get_no_link_and_no_count(client, overpaid):
    client.force_login(make_staff("auditor", "backoffice.view_stripeevent"))

    html = client.get(reverse("admin:index")).content.decode()

    assert f'href="{PRESET}"' not in html
    assert "need attention" not in html and "needs attention." not in html


def test_the_dashboard_counts_the_orders_and_links_the_preset(
    supervisor_client, overpaid, make_order
):
    stale_card_attempt(make_order("100.00"))

    html = supervisor_client.get(reverse("admin:index")).content.decode()

    notice = html[html.index('id="orders-needing-attention"') :]
    notice = notice[: notice.index("</div>")]
    assert "2 orders need attention." in notice
    assert f'href="{PRESET}"' in notice


def test_the_dashboard_says_nothing_when_nothing_needs_attention(supervisor_client, make_order):
    make_order("100.00")

    html = supervisor_client.get(reverse("admin:index")).content.decode()

    assert 'id="orders-needing-attention"' not in html
