"""Encrypt the conferences' Stripe secret keys and webhook secrets at rest.

1. widen the columns to text (a Fernet token is longer than the key);
2. encrypt every existing non-empty value with the newest configured key;
3. switch the fields to EncryptedTextField (no schema change).
Reversing decrypts the values back to plain text.
"""

from django.db import migrations, models

import backoffice.fields

SECRET_FIELDS = ("stripe_secret_key", "stripe_webhook_secret")


def encrypt_existing(apps, schema_editor):
    """Replace each plain secret by its Fernet token."""
    from backoffice.encryption import encrypt

    Conference = apps.get_model("backoffice", "Conference")
    for conference in Conference.objects.using(schema_editor.connection.alias).all():
        changes = {f: encrypt(getattr(conference, f)) for f in SECRET_FIELDS if getattr(conference, f)}
        if changes:
            Conference.objects.filter(pk=conference.pk).update(**changes)


def decrypt_existing(apps, schema_editor):
    """Replace each Fernet token by the plain secret."""
    from backoffice.encryption import decrypt

    Conference = apps.get_model("backoffice", "Conference")
    for conference in Conference.objects.using(schema_editor.connection.alias).all():
        changes = {f: decrypt(getattr(conference, f)) for f in SECRET_FIELDS if getattr(conference, f)}
        if changes:
            Conference.objects.filter(pk=conference.pk).update(**changes)


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0002_import_cache_table"),
    ]

    operations = [
        migrations.AlterField(
            model_name="conference",
            name="stripe_secret_key",
            field=models.TextField(blank=True),
        ),
        migrations.AlterField(
            model_name="conference",
            name="stripe_webhook_secret",
            field=models.TextField(blank=True),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing, elidable=False),
        migrations.AlterField(
            model_name="conference",
            name="stripe_secret_key",
            field=backoffice.fields.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="conference",
            name="stripe_webhook_secret",
            field=backoffice.fields.EncryptedTextField(blank=True),
        ),
    ]
