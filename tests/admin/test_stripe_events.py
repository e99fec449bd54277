"""Stripe events in the admin: read-only list and page, filters, and "Reprocess"."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backoffice.models import Order, StripeEvent
from backoffice.services.payment import PaymentService
from backoffice.services.webhooks import StripeEventFailed, receive_stripe_event
from tests.stripe_fixtures import build_event

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:backoffice_stripeevent_changelist"


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def staff_client(*codenames: str) -> tuple[Client, object]:
    user = get_user_model().objects.create_user(
        username="-".join(codenames) or "nobody", password="x-pass-123", is_staff=True
    )
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def events(stripe_conference):
    """One processed event, one failed event and one unprocessed one."""
    ok = StripeEvent.objects.create(
        stripe_event_id="evt_ok",
        conference=stripe_conference,
        type="customer.created",
        payload=build_event("customer.created", {"id": "cus_1"}, "evt_ok"),
        processed_at=timezone.now(),
    )
    failed = StripeEvent.objects.create(
        stripe_event_id="evt_failed",
        conference=stripe_conference,
        type="payment_intent.succeeded",
        payload=build_event(
            "payment_intent.succeeded",
            {
                "id": "pi_x",
                "amount": 1000,
                "currency": "usd",
                "metadata": {"order_id": "999999", "order_reference": "ORD-NOPE"},
            },
            "evt_failed",
        ),
        last_error="UnmatchedPaymentError: names order ORD-NOPE",
    )
    waiting = StripeEvent.objects.create(
        stripe_event_id="evt_waiting",
        conference=stripe_conference,
        type="charge.refunded",
        payload=build_event("charge.refunded", {"id": "ch_x", "currency": "usd"}, "evt_waiting"),
    )
    return ok, failed, waiting


def test_list_shows_events_and_filters_by_type_processed_and_error(admin_client, events):
    url = reverse(CHANGELIST)

    everything = admin_client.get(url, {"customer_events": "show"}).content.decode()
    by_type = admin_client.get(url, {"type": "charge.refunded"}).content.decode()
    processed = admin_client.get(
        url, {"processed": "yes", "customer_events": "show"}
    ).content.decode()
    unprocessed = admin_client.get(url, {"processed": "no"}).content.decode()
    with_error = admin_client.get(url, {"error": "yes"}).content.decode()

    assert all(e in everything for e in ("evt_ok", "evt_failed", "evt_waiting"))
    assert "UnmatchedPaymentError" in everything
    assert "evt_waiting" in by_type and "evt_ok" not in by_type
    assert "evt_ok" in processed and "evt_failed" not in processed
    assert "evt_failed" in unprocessed and "evt_waiting" in unprocessed
    assert "evt_ok" not in unprocessed
    assert "evt_failed" in with_error and "evt_waiting" not in with_error


def test_events_are_read_only(admin_client, events):
    ok, _, _ = events
    change = reverse("admin:backoffice_stripeevent_change", args=[ok.pk])

    page = admin_client.get(change)
    post = admin_client.post(change, {"type": "tampered"})

    assert page.status_code == 200
    assert "evt_ok" in page.content.decode()
    assert post.status_code == 403
    assert admin_client.get(reverse("admin:backoffice_stripeevent_add")).status_code == 403
    delete = reverse("admin:backoffice_stripeevent_delete", args=[ok.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    ok.refresh_from_db()
    assert ok.type == "customer.created"


def test_reprocess_applies_a_failed_event_once_its_cause_is_fixed(
    admin_client, stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
    intent = localstripe.confirm_payment_intent(intent_id)
    broken = intent | {"currency": "eur"}
    event = build_event("payment_intent.succeeded", broken)
    with pytest.raises(StripeEventFailed):
        receive_stripe_event(conference=stripe_conference, event=event)
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    reprocess = reverse("admin:backoffice_stripeevent_reprocess", args=[stored.pk])

    refused = admin_client.post(reprocess, {"_form_submitted": "True"})
    assert refused.status_code == 200
    assert "failed again" in refused.content.decode()

    stored.payload["data"]["object"]["currency"] = "usd"  # the cause, fixed
    stored.save()
    response = admin_client.post(reprocess, {"_form_submitted": "True"})

    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert stored.last_error == ""
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert LogEntry.objects.filter(object_id=str(stored.pk)).exists()


def test_bulk_reprocess_reports_each_failure_and_keeps_going(admin_client, events):
    ok, failed, waiting = events

    response = admin_client.post(
        reverse(CHANGELIST) + "?customer_events=show",
        {"action": "reprocess_selected", "_selected_action": [ok.pk, failed.pk, waiting.pk]},
        follow=True,
    )

    text = " ".join(messages_of(response))
    assert "2 events were processed." in text
    assert "1 event failed:" in text
    assert "ORD-NOPE" in text
    waiting.refresh_from_db()
    failed.refresh_from_db()
    assert waiting.processed_at is not None
    assert failed.processed_at is None
    assert failed.last_error


def test_reprocess_needs_the_permission(events):
    _, failed, _ = events
    viewer, _ = staff_client("view_stripeevent")
    reprocessor, _ = staff_client("view_stripeevent", "reprocess_stripeevent")
    reprocess = reverse("admin:backoffice_stripeevent_reprocess", args=[failed.pk])
    change = reverse("admin:backoffice_stripeevent_change", args=[failed.pk])

    assert reprocess not in viewer.get(change).content.decode()
    assert viewer.post(reprocess, {"_form_submitted": "True"}).status_code == 403
    assert reprocess in reprocessor.get(change).content.decode()


def test_reprocess_needs_the_view_permission_too_for_get_and_post(events):
    _, failed, waiting = events
    reprocessor_only, _ = staff_client("reprocess_stripeevent")
    reprocess = reverse("admin:backoffice_stripeevent_reprocess", args=[failed.pk])

    opened = reprocessor_only.get(reprocess, headers={"HX-Request": "true"})
    submitted = reprocessor_only.post(reprocess, {"_form_submitted": "True"})
    bulk = reprocessor_only.post(
        reverse(CHANGELIST), {"action": "reprocess_selected", "_selected_action": [waiting.pk]}
    )

    for response in (opened, submitted, bulk):
        assert response.status_code == 403
        html = response.content.decode()
        assert "evt_failed" not in html and "ORD-NOPE" not in html
    waiting.refresh_from_db()
    assert waiting.processed_at is None
    assert not LogEntry.objects.exists()


def test_reprocess_dialog_opens_for_who_may_view_and_reprocess(events):
    _, failed, _ = events
    reprocessor, _ = staff_client("view_stripeevent", "reprocess_stripeevent")
    reprocess = reverse("admin:backoffice_stripeevent_reprocess", args=[failed.pk])

    opened = reprocessor.get(reprocess, headers={"HX-Request": "true"})

    assert opened.status_code == 200
    assert "evt_failed" in opened.content.decode()


CLIENT_SECRET = "pi_3PayloadIntent_secret_PayloadClientSecret42"
UNPATTERNED_SECRET = "opaque-value-only-its-key-says-secret"


@pytest.fixture
def event_with_secrets(stripe_conference):
    """A stored payment_intent event whose payload carries a client secret, and worse."""
    intent = {
        "id": "pi_3PayloadIntent",
        "amount": 1000,
        "currency": "usd",
        "client_secret": CLIENT_SECRET,
        "metadata": {"order_reference": "ORD-SHOWN", "note": "key sk_test_51MetadataKey77"},
        "next_action": {
            "redirect_to_url": {
                "url": f"https://x.test/?payment_intent_client_secret={CLIENT_SECRET}"
            }
        },
        "ephemeral": {"secret": UNPATTERNED_SECRET, "webhook_secret": "whsec_InPayload55"},
        "cancellation_reason": None,
    }
    return StripeEvent.objects.create(
        stripe_event_id="evt_secrets",
        conference=stripe_conference,
        type="payment_intent.succeeded",
        payload=build_event("payment_intent.succeeded", intent, "evt_secrets"),
        last_error=f"Could not apply: intent {CLIENT_SECRET} is odd",
    )


def test_event_page_masks_client_secrets_and_keys_in_the_payload(event_with_secrets):
    viewer, _ = staff_client("view_stripeevent")
    change = reverse("admin:backoffice_stripeevent_change", args=[event_with_secrets.pk])

    pages = [
        viewer.get(change).content.decode(),
        viewer.get(reverse(CHANGELIST)).content.decode(),
        viewer.get(reverse(CHANGELIST), {"q": "evt_secrets"}).content.decode(),
    ]

    for html in pages:
        assert "evt_secrets" in html
        for secret in (
            CLIENT_SECRET,
            "_secret_PayloadClientSecret42",
            UNPATTERNED_SECRET,
            "sk_test_51MetadataKey77",
            "whsec_InPayload55",
        ):
            assert secret not in html
    page = pages[0]
    assert "[REDACTED]" in page
    assert "pi_3PayloadIntent" in page and "ORD-SHOWN" in page  # the rest is still readable
    assert "cancellation_reason" in page


def test_reprocess_dialog_masks_a_client_secret_in_the_error(event_with_secrets):
    reprocessor, _ = staff_client("view_stripeevent", "reprocess_stripeevent")
    reprocess = reverse("admin:backoffice_stripeevent_reprocess", args=[event_with_secrets.pk])

    html = reprocessor.get(reprocess, headers={"HX-Request": "true"}).content.decode()

    assert "Could not apply" in html
    assert CLIENT_SECRET not in html and "[REDACTED]" in html


def test_masking_for_display_leaves_the_stored_payload_intact(event_with_secrets):
    viewer, _ = staff_client("view_stripeevent")
    change = reverse("admin:backoffice_stripeevent_change", args=[event_with_secrets.pk])

    assert viewer.get(change).status_code == 200

    stored = StripeEvent.objects.get(pk=event_with_secrets.pk)
    assert stored.payload["data"]["object"]["client_secret"] == CLIENT_SECRET
    assert stored.payload["data"]["object"]["ephemeral"]["secret"] == UNPATTERNED_SECRET


def test_a_failed_reprocess_masks_a_client_secret_in_its_message(event_with_secrets):
    reprocessor, _ = staff_client("view_stripeevent", "reprocess_stripeevent")
    reprocess = reverse("admin:backoffice_stripeevent_reprocess", args=[event_with_secrets.pk])
    # The order the event names does not exist, so applying it fails again.
    metadata = event_with_secrets.payload["data"]["object"]["metadata"]
    metadata.update(order_id="999999", order_reference=CLIENT_SECRET)
    event_with_secrets.save()

    dialog = reprocessor.post(reprocess, {"_form_submitted": "True"})
    bulk = reprocessor.post(
        reverse(CHANGELIST),
        {"action": "reprocess_selected", "_selected_action": [event_with_secrets.pk]},
        follow=True,
    )

    assert "failed again" in dialog.content.decode()
    assert "1 event failed:" in " ".join(messages_of(bulk))
    for html in (dialog.content.decode(), bulk.content.decode(), *messages_of(bulk)):
        assert CLIENT_SECRET not in html


def listed_ids(response) -> list[str]:
    """The event ids a list page shows, newest first."""
    assert response.status_code == 200
    return [event.stripe_event_id for event in response.context["cl"].result_list]


@pytest.fixture
def customer_events(stripe_conference):
    """An applied customer event, a failed one, and an applied payment event."""

    def stored(event_id: str, event_type: str, **fields) -> StripeEvent:
        return StripeEvent.objects.create(
            stripe_event_id=event_id,
            conference=stripe_conference,
            type=event_type,
            payload=build_event(event_type, {"id": f"cus_{event_id}"}, event_id),
            processed_at=timezone.now(),
            **fields,
        )

    stored("evt_cus_applied", "customer.updated")
    stored("evt_cus_failed", "customer.created", last_error="ValueError: boom")
    stored("evt_pi", "payment_intent.created")


def test_customer_events_are_hidden_by_default_unless_they_failed(admin_client, customer_events):
    response = admin_client.get(reverse(CHANGELIST))

    assert listed_ids(response) == ["evt_pi", "evt_cus_failed"]


def test_a_customer_event_not_applied_yet_stays_listed(admin_client, customer_events):
    StripeEvent.objects.filter(stripe_event_id="evt_cus_applied").update(processed_at=None)

    response = admin_client.get(reverse(CHANGELIST))

    assert listed_ids(response) == ["evt_pi", "evt_cus_failed", "evt_cus_applied"]


def test_customer_events_are_shown_on_request(admin_client, customer_events):
    response = admin_client.get(reverse(CHANGELIST), {"customer_events": "show"})

    assert listed_ids(response) == ["evt_pi", "evt_cus_failed", "evt_cus_applied"]


@pytest.mark.parametrize(
    "query",
    [{"type": "customer.updated"}, {"type__exact": "customer.updated"}, {"q": "evt_cus_applied"}],
)
def test_a_type_filter_or_a_search_finds_customer_events_too(admin_client, customer_events, query):
    response = admin_client.get(reverse(CHANGELIST), query)

    assert listed_ids(response) == ["evt_cus_applied"]


def test_the_failed_events_link_of_the_dashboard_lists_failed_customer_events(
    admin_client, customer_events
):
    response = admin_client.get(reverse(CHANGELIST), {"error": "yes"})

    assert listed_ids(response) == ["evt_cus_failed"]


def chosen_customer_choice(html: str) -> str:
    """The customer events filter's choice shown as chosen (unfold's highlighted item)."""
    section = html[html.index("By customer events") :]
    section = section[: section.index("</ul>")]
    [chosen] = re.findall(r'<li class="[^"]*text-primary-600[^"]*">\s*<a [^>]*>\s*(\w+)', section)
    return chosen


def test_the_filter_offers_hidden_by_default_and_shown(admin_client, customer_events):
    default = admin_client.get(reverse(CHANGELIST)).content.decode()
    shown = admin_client.get(reverse(CHANGELIST), {"customer_events": "show"}).content.decode()

    assert chosen_customer_choice(default) == "Hidden"
    assert 'href="?customer_events=show"' in default
    assert chosen_customer_choice(shown) == "Shown"


def test_each_event_links_to_its_order(admin_client, stripe_conference, make_order):
    order = make_order("100.00", conference=stripe_conference)
    StripeEvent.objects.create(
        stripe_event_id="evt_about_order",
        conference=stripe_conference,
        order=order,
        type="payment_intent.succeeded",
        payload=build_event("payment_intent.succeeded", {"id": "pi_o"}, "evt_about_order"),
    )
    order_url = reverse("admin:backoffice_order_change", args=[order.pk])

    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    page = admin_client.get(
        reverse("admin:backoffice_stripeevent_change", args=[order.stripe_events.get().pk])
    ).content.decode()

    for html in (listing, page):
        assert re.search(rf'<a [^>]*href="{re.escape(order_url)}"[^>]*>{order.reference}</a>', html)


@pytest.mark.parametrize(("livemode", "base"), [(False, "test/"), (True, "")])
def test_event_ids_link_to_stripe_s_dashboard_in_the_event_s_mode(
    admin_client, stripe_conference, livemode, base
):
    event = StripeEvent.objects.create(
        stripe_event_id="evt_mode",
        conference=stripe_conference,
        type="charge.refunded",
        livemode=livemode,
        payload=build_event(
            "charge.refunded", {"id": "ch_mode", "customer": "cus_mode"}, "evt_mode"
        ),
    )
    dashboard = f"https://dashboard.stripe.com/{base}"

    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    page = admin_client.get(
        reverse("admin:backoffice_stripeevent_change", args=[event.pk])
    ).content.decode()

    assert f'href="{dashboard}events/evt_mode"' in listing
    assert f'href="{dashboard}events/evt_mode"' in page
    assert f'href="{dashboard}payments/ch_mode"' in page
    assert f'href="{dashboard}customers/cus_mode"' in page
    event_page = reverse("admin:backoffice_stripeevent_change", args=[event.pk])
    assert f'href="{event_page}"' in listing  # the type opens the event's page here
