"""Stripe secrets at rest: encrypted columns, plain attributes, rotation, clear key errors."""

import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from backoffice.encryption import SecretDecryptionError, decrypt, development_key, encrypt, mask
from backoffice.models import Conference

SECRET = "sk_test_51PlainSecretKeyValue4242"
WEBHOOK = "whsec_PlainWebhookSecret9876"


def raw_columns(pk: int) -> tuple[str, str]:
    """The secret columns exactly as stored in the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stripe_secret_key, stripe_webhook_secret FROM backoffice_conference "
            "WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


@pytest.fixture
def keyed_conference(db) -> Conference:
    """A conference with both Stripe secrets set."""
    return Conference.objects.create(
        name="Keyed", slug="keyed", stripe_secret_key=SECRET, stripe_webhook_secret=WEBHOOK
    )


def test_raw_columns_never_hold_the_plain_secrets(keyed_conference: Conference) -> None:
    raw_key, raw_webhook = raw_columns(keyed_conference.pk)
    assert SECRET not in raw_key and WEBHOOK not in raw_webhook
    assert raw_key.startswith("gAAAA")  # a Fernet token
    assert decrypt(raw_key) == SECRET
    assert decrypt(raw_webhook) == WEBHOOK


def test_attributes_read_and_write_the_plain_values(keyed_conference: Conference) -> None:
    fresh = Conference.objects.get(pk=keyed_conference.pk)
    assert fresh.stripe_secret_key == SECRET
    assert fresh.stripe_webhook_secret == WEBHOOK
    fresh.stripe_secret_key = "sk_test_Replaced0000"
    fresh.save()
    assert Conference.objects.get(pk=fresh.pk).stripe_secret_key == "sk_test_Replaced0000"
    assert "sk_test_Replaced0000" not in raw_columns(fresh.pk)[0]


def test_saving_other_fields_keeps_the_secrets(keyed_conference: Conference) -> None:
    before = raw_columns(keyed_conference.pk)
    fresh = Conference.objects.get(pk=keyed_conference.pk)
    fresh.name = "Renamed"
    fresh.save()
    assert raw_columns(fresh.pk) == before  # untouched tokens are written back as they are
    assert Conference.objects.get(pk=fresh.pk).stripe_secret_key == SECRET


def test_empty_secret_stays_empty_and_can_be_queried(db) -> None:
    conference = Conference.objects.create(name="Bare", slug="bare")
    assert raw_columns(conference.pk) == ("", "")
    assert Conference.objects.filter(stripe_secret_key="").get() == conference
    with pytest.raises(FieldError):
        Conference.objects.filter(stripe_secret_key=SECRET).exists()


def test_rotation_reencrypts_every_row_with_the_newest_key(
    keyed_conference: Conference, settings
) -> None:
    old_key = settings.BACKOFFICE_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    before = raw_columns(keyed_conference.pk)

    settings.BACKOFFICE_ENCRYPTION_KEYS = [new_key, old_key]
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 2 secret(s) in 1 conference(s)." in out.getvalue()

    after = raw_columns(keyed_conference.pk)
    assert after != before
    new_only = Fernet(new_key.encode())
    assert new_only.decrypt(after[0].encode()).decode() == SECRET
    assert new_only.decrypt(after[1].encode()).decode() == WEBHOOK

    settings.BACKOFFICE_ENCRYPTION_KEYS = [new_key]  # the old key can go now
    fresh = Conference.objects.get(pk=keyed_conference.pk)
    assert fresh.stripe_secret_key == SECRET
    assert fresh.stripe_webhook_secret == WEBHOOK


def test_new_key_first_still_reads_rows_written_with_the_old_one(
    keyed_conference: Conference, settings
) -> None:
    settings.BACKOFFICE_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.BACKOFFICE_ENCRYPTION_KEYS,
    ]
    assert Conference.objects.get(pk=keyed_conference.pk).stripe_secret_key == SECRET


def test_a_wrong_key_is_a_clear_error_not_garbage(keyed_conference: Conference, settings) -> None:
    settings.BACKOFFICE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    fresh = Conference.objects.get(pk=keyed_conference.pk)  # loading needs no key
    with pytest.raises(SecretDecryptionError, match="none of the keys") as error:
        fresh.stripe_secret_key  # noqa: B018
    assert SECRET not in str(error.value)
    assert f"pk={keyed_conference.pk}" in str(error.value)
    with pytest.raises(SecretDecryptionError):
        call_command("rotate_encryption_keys", stdout=StringIO())


def test_no_key_without_debug_is_a_clear_error(keyed_conference: Conference, settings) -> None:
    settings.BACKOFFICE_ENCRYPTION_KEYS = []
    settings.DEBUG = False
    with pytest.raises(ImproperlyConfigured, match="BACKOFFICE_ENCRYPTION_KEYS is not set"):
        Conference.objects.get(pk=keyed_conference.pk).stripe_secret_key  # noqa: B018


def test_debug_without_keys_uses_a_key_derived_from_the_secret_key(settings) -> None:
    settings.BACKOFFICE_ENCRYPTION_KEYS = []
    settings.DEBUG = True
    token = encrypt("sk_test_dev")
    assert Fernet(development_key().encode()).decrypt(token.encode()) == b"sk_test_dev"
    settings.SECRET_KEY = "another-secret-key-gives-another-development-key"
    with pytest.raises(SecretDecryptionError):
        decrypt(token)


def test_mask_shows_only_the_last_four_characters() -> None:
    assert mask("sk_test_51Abcdefgh1234") == "••••1234"
    assert mask("short") == "••••"
    assert mask("") == ""


def test_generate_encryption_key_prints_a_usable_key() -> None:
    out = StringIO()
    call_command("generate_encryption_key", stdout=out)
    Fernet(out.getvalue().strip().encode())  # raises if it is not a Fernet key


def test_dumpdata_writes_tokens_and_loaddata_reads_them_back(
    keyed_conference: Conference, tmp_path
) -> None:
    fixture = tmp_path / "conferences.json"
    call_command("dumpdata", "backoffice.conference", output=str(fixture), stdout=StringIO())
    dumped = fixture.read_text()
    assert SECRET not in dumped and WEBHOOK not in dumped
    fields = json.loads(dumped)[0]["fields"]
    assert decrypt(fields["stripe_secret_key"]) == SECRET  # a token of the current key

    Conference.objects.all().delete()
    call_command("loaddata", str(fixture), stdout=StringIO())
    restored = Conference.objects.get(slug="keyed")
    assert restored.stripe_secret_key == SECRET  # not encrypted a second time
    assert restored.stripe_webhook_secret == WEBHOOK
