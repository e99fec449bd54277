"""Conference admin: stored Stripe secrets are never displayed; blank keeps them."""

import re
from html import unescape

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from backoffice.models import Conference

SECRET = "sk_test_51StoredSecretKeyABCD"
WEBHOOK = "whsec_StoredWebhookSecretWXYZ"


@pytest.fixture
def admin_client_logged_in(db) -> Client:
    """A superuser's client."""
    user = get_user_model().objects.create_superuser("root", "root@example.com", "root-pass-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def keyed(db) -> Conference:
    """A conference with its Stripe keys set."""
    return Conference.objects.create(
        name="PyCon Keys",
        slug="pycon-keys",
        stripe_publishable_key="pk_test_public",
        stripe_secret_key=SECRET,
        stripe_webhook_secret=WEBHOOK,
    )


def form_data(conference: Conference, **changes: str) -> dict[str, str]:
    """The change form's fields as a browser would post them (secrets left blank)."""
    data = {
        "name": conference.name,
        "slug": conference.slug,
        "currency": conference.currency,
        "stripe_publishable_key": conference.stripe_publishable_key,
        "stripe_secret_key": "",
        "stripe_webhook_secret": "",
    }
    data.update(changes)
    return data


def change_url(conference: Conference) -> str:
    """The admin change page of the conference."""
    return f"/admin/backoffice/conference/{conference.pk}/change/"


def test_change_page_shows_only_a_masked_hint(admin_client_logged_in: Client, keyed) -> None:
    response = admin_client_logged_in.get(change_url(keyed))
    html = response.content.decode()
    assert response.status_code == 200
    assert SECRET not in html and WEBHOOK not in html
    assert "••••ABCD" in html and "••••WXYZ" in html
    assert "pk_test_public" in html  # the publishable key is not a secret


def test_list_page_does_not_show_secrets(admin_client_logged_in: Client, keyed) -> None:
    html = admin_client_logged_in.get("/admin/backoffice/conference/").content.decode()
    assert "PyCon Keys" in html
    assert SECRET not in html and "ABCD" not in html


def test_blank_secret_fields_keep_the_stored_values(admin_client_logged_in: Client, keyed) -> None:
    response = admin_client_logged_in.post(change_url(keyed), form_data(keyed, name="Renamed"))
    assert response.status_code == 302
    fresh = Conference.objects.get(pk=keyed.pk)
    assert fresh.name == "Renamed"
    assert fresh.stripe_secret_key == SECRET
    assert fresh.stripe_webhook_secret == WEBHOOK


def test_a_new_value_replaces_the_secret(admin_client_logged_in: Client, keyed) -> None:
    data = form_data(keyed, stripe_secret_key="sk_test_NewKey7777")
    assert admin_client_logged_in.post(change_url(keyed), data).status_code == 302
    fresh = Conference.objects.get(pk=keyed.pk)
    assert fresh.stripe_secret_key == "sk_test_NewKey7777"
    assert fresh.stripe_webhook_secret == WEBHOOK


def test_a_secret_can_be_removed(admin_client_logged_in: Client, keyed) -> None:
    data = form_data(keyed, clear_stripe_webhook_secret="on")
    assert admin_client_logged_in.post(change_url(keyed), data).status_code == 302
    fresh = Conference.objects.get(pk=keyed.pk)
    assert fresh.stripe_webhook_secret == ""
    assert fresh.stripe_secret_key == SECRET


def test_a_value_of_the_wrong_kind_is_refused_and_not_echoed(
    admin_client_logged_in: Client, keyed
) -> None:
    data = form_data(keyed, stripe_secret_key="pk_live_oops_public_key")
    response = admin_client_logged_in.post(change_url(keyed), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "starts with sk_test_, sk_live_, rk_test_ or rk_live_" in html
    assert "pk_live_oops_public_key" not in html  # password inputs are not re-rendered
    assert Conference.objects.get(pk=keyed.pk).stripe_secret_key == SECRET


def test_adding_a_conference_stores_the_secrets_encrypted(admin_client_logged_in: Client) -> None:
    data = {
        "name": "New Conf",
        "slug": "new-conf",
        "currency": "eur",
        "stripe_publishable_key": "pk_test_x",
        "stripe_secret_key": "sk_test_AddedKey1111",
        "stripe_webhook_secret": "whsec_Added2222",
    }
    response = admin_client_logged_in.post("/admin/backoffice/conference/add/", data)
    assert response.status_code == 302
    created = Conference.objects.get(slug="new-conf")
    assert created.stripe_secret_key == "sk_test_AddedKey1111"
    assert created.currency == "EUR"


def test_currency_can_be_changed_while_the_conference_has_no_orders(
    admin_client_logged_in: Client, keyed
) -> None:
    response = admin_client_logged_in.post(change_url(keyed), form_data(keyed, currency="EUR"))
    assert response.status_code == 302
    assert Conference.objects.get(pk=keyed.pk).currency == "EUR"


def test_currency_is_read_only_once_the_conference_has_orders(
    admin_client_logged_in: Client, keyed, make_order
) -> None:
    """Order amounts are in the currency: changing it would make them unpayable (or wrong)."""
    make_order("49.99", conference=keyed)

    page = admin_client_logged_in.get(change_url(keyed)).content.decode()
    response = admin_client_logged_in.post(
        change_url(keyed), form_data(keyed, currency="JPY", name="Renamed")
    )

    assert 'name="currency"' not in page
    assert response.status_code == 302
    fresh = Conference.objects.get(pk=keyed.pk)
    assert fresh.name == "Renamed"
    assert fresh.currency == "USD"


# --- Secrets are never rendered decrypted, whoever looks and wherever ------------------


@pytest.fixture
def viewer_client(db) -> Client:
    """A staff member who may only view conferences."""
    user = get_user_model().objects.create_user(
        "conf-viewer", "conf-viewer@example.com", "viewer-pass-123", is_staff=True
    )
    user.user_permissions.set(Permission.objects.filter(codename="view_conference"))
    client = Client()
    client.force_login(user)
    return client


def assert_masked(html: str) -> None:
    """Neither secret appears in full; both masked hints do."""
    assert SECRET not in html and WEBHOOK not in html
    assert SECRET[:-4] not in html and WEBHOOK[:-4] not in html
    assert "••••ABCD" in html and "••••WXYZ" in html


def test_view_only_staff_see_only_masked_hints_on_the_conference_page(
    viewer_client: Client, keyed
) -> None:
    response = viewer_client.get(change_url(keyed))

    assert response.status_code == 200
    html = response.content.decode()
    assert "PyCon Keys" in html and "pk_test_public" in html
    assert_masked(html)
    assert 'name="stripe_secret_key"' not in html  # read-only: no input at all


def test_view_only_staff_see_no_secret_in_the_list_or_search(viewer_client: Client, keyed) -> None:
    listing = viewer_client.get("/admin/backoffice/conference/").content.decode()
    found = viewer_client.get("/admin/backoffice/conference/", {"q": "Keys"}).content.decode()

    for html in (listing, found):
        assert "PyCon Keys" in html
        assert SECRET not in html and WEBHOOK not in html and "ABCD" not in html


def test_a_replaced_secret_appears_in_no_history_or_delete_page(
    admin_client_logged_in: Client, viewer_client: Client, keyed
) -> None:
    new_secret = "sk_test_ReplacedSecretKey9876"
    data = form_data(keyed, stripe_secret_key=new_secret)
    assert admin_client_logged_in.post(change_url(keyed), data).status_code == 302
    history_url = f"/admin/backoffice/conference/{keyed.pk}/history/"
    delete_url = f"/admin/backoffice/conference/{keyed.pk}/delete/"

    pages = [
        admin_client_logged_in.get(history_url),
        viewer_client.get(history_url),
        admin_client_logged_in.get(delete_url),
        admin_client_logged_in.get(change_url(keyed)),
        viewer_client.get(change_url(keyed)),
        admin_client_logged_in.post(  # the bulk delete action's confirmation page
            "/admin/backoffice/conference/",
            {"action": "delete_selected", "_selected_action": [keyed.pk]},
        ),
    ]

    assert [page.status_code for page in pages] == [200] * 6
    assert "Are you sure" in pages[5].content.decode()
    assert "Stripe secret key" in pages[0].content.decode()  # the change is in the history
    for page in pages:
        html = page.content.decode()
        assert new_secret not in html and new_secret[:-4] not in html
        assert SECRET not in html and WEBHOOK not in html
    assert "••••9876" in pages[3].content.decode() and "••••9876" in pages[4].content.decode()
    entry = LogEntry.objects.get(object_id=str(keyed.pk))
    assert new_secret not in entry.change_message and new_secret not in entry.get_change_message()


def field_errors(html: str, field: str) -> list[str]:
    """The error texts shown under one field of the change form."""
    block = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    if block is None:
        return []
    return [unescape(text) for text in re.findall(r"<li>(.*?)</li>", block.group(1))]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("stripe_publishable_key", "pk_test", "starts with pk_test_ or pk_live_"),
        ("stripe_publishable_key", "pk_local", "starts with pk_test_ or pk_live_"),
        ("stripe_publishable_key", "sk_test_local", "This is a secret key, not the publishable"),
        ("stripe_secret_key", "sk_local", "starts with sk_test_, sk_live_, rk_test_ or rk_live_"),
        (
            "stripe_webhook_secret",
            "wh_local",
            "starts with whsec_, as copied from Stripe's dashboard (Developers › Webhooks",
        ),
    ],
)
def test_a_key_with_the_wrong_prefix_is_an_error_on_its_field(
    admin_client_logged_in: Client, keyed, field, value, says
) -> None:
    response = admin_client_logged_in.post(change_url(keyed), form_data(keyed, **{field: value}))

    assert response.status_code == 200
    [error] = field_errors(response.content.decode(), field)
    assert says in error
    fresh = Conference.objects.get(pk=keyed.pk)
    assert (fresh.stripe_publishable_key, fresh.stripe_secret_key) == ("pk_test_public", SECRET)


def test_a_secret_typed_in_the_publishable_field_is_refused_and_not_echoed(
    admin_client_logged_in: Client, keyed
) -> None:
    data = form_data(keyed, stripe_publishable_key="sk_live_51VerySecretValue")

    html = admin_client_logged_in.post(change_url(keyed), data).content.decode()

    [error] = field_errors(html, "stripe_publishable_key")
    assert "This is a secret key" in error
    assert "sk_live_51VerySecretValue" not in html
    assert Conference.objects.get(pk=keyed.pk).stripe_publishable_key == "pk_test_public"


def test_a_pair_stored_before_the_check_does_not_block_other_edits(
    admin_client_logged_in: Client, keyed
) -> None:
    Conference.objects.filter(pk=keyed.pk).update(stripe_publishable_key="pk_live_51Old")
    keyed.refresh_from_db()

    response = admin_client_logged_in.post(change_url(keyed), form_data(keyed, name="Renamed"))

    assert response.status_code == 302
    assert Conference.objects.get(pk=keyed.pk).name == "Renamed"


def test_a_live_publishable_key_beside_the_stored_test_secret_is_refused(
    admin_client_logged_in: Client, keyed
) -> None:
    data = form_data(keyed, stripe_publishable_key="pk_live_51Real")

    html = admin_client_logged_in.post(change_url(keyed), data).content.decode()

    [error] = field_errors(html, "stripe_publishable_key")
    assert "publishable key is a live key but the secret key is a test key" in error
    assert Conference.objects.get(pk=keyed.pk).stripe_publishable_key == "pk_test_public"


def test_a_new_live_secret_beside_a_test_publishable_key_is_an_error_on_the_secret(
    admin_client_logged_in: Client, keyed
) -> None:
    data = form_data(keyed, stripe_secret_key="sk_live_51Real")

    html = admin_client_logged_in.post(change_url(keyed), data).content.decode()

    [error] = field_errors(html, "stripe_secret_key")
    assert "publishable key is a test key but the secret key is a live key" in error
    assert Conference.objects.get(pk=keyed.pk).stripe_secret_key == SECRET


def test_switching_both_keys_to_live_is_accepted(admin_client_logged_in: Client, keyed) -> None:
    data = form_data(
        keyed, stripe_publishable_key="pk_live_51Real", stripe_secret_key="rk_live_51Real"
    )

    assert admin_client_logged_in.post(change_url(keyed), data).status_code == 302
    fresh = Conference.objects.get(pk=keyed.pk)
    assert (fresh.stripe_publishable_key, fresh.stripe_secret_key) == (
        "pk_live_51Real",
        "rk_live_51Real",
    )


def test_the_local_fakes_keys_are_accepted(admin_client_logged_in: Client, keyed) -> None:
    data = form_data(
        keyed,
        stripe_publishable_key="pk_test_local",
        stripe_secret_key="sk_test_local",
        stripe_webhook_secret="whsec_local",
    )

    assert admin_client_logged_in.post(change_url(keyed), data).status_code == 302
    fresh = Conference.objects.get(pk=keyed.pk)
    assert (
        fresh.stripe_publishable_key,
        fresh.stripe_secret_key,
        fresh.stripe_webhook_secret,
    ) == ("pk_test_local", "sk_test_local", "whsec_local")


def test_removal_is_offered_only_beside_a_stored_secret(
    admin_client_logged_in: Client, conference
) -> None:
    conference.stripe_secret_key = SECRET
    conference.save()

    html = admin_client_logged_in.get(change_url(conference)).content.decode()
    added = admin_client_logged_in.get("/admin/backoffice/conference/add/").content.decode()

    assert "Remove the stored secret key" in html
    assert 'name="clear_stripe_secret_key"' in html
    assert "Remove the stored webhook secret" not in html
    assert 'name="clear_stripe_webhook_secret"' not in html
    assert "Remove the stored" not in added
