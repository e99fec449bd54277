"""Trigram indexes for the admin's substring search (PostgreSQL only); Stripe event ids.

Django's ``icontains`` compares ``UPPER(col) LIKE UPPER('%term%')``; a GIN
``gin_trgm_ops`` index on the same ``UPPER(col)`` expression serves it (and
``iexact``'s equality) without a scan. SQLite has neither pg_trgm nor GIN:
there every operation here records its state and creates nothing.
"""

from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models
from django.db.models.functions import Upper

# auth_user belongs to django.contrib.auth, so its indexes are plain SQL, not model state:
# trigram indexes for fragments, and a btree on UPPER(email) for a pasted address (iexact).
USER_INDEXES = {
    "backoffice_user_email_trgm": "USING gin (UPPER({email}) gin_trgm_ops)",
    "backoffice_user_first_name_trgm": "USING gin (UPPER({first_name}) gin_trgm_ops)",
    "backoffice_user_last_name_trgm": "USING gin (UPPER({last_name}) gin_trgm_ops)",
    "backoffice_user_email_upper": "(UPPER({email}))",
}


def user_table(apps) -> str:
    """The user model's table."""
    return apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table


def add_user_indexes(apps, schema_editor) -> None:
    """Indexes on the attendee's account e-mail and names, on PostgreSQL."""
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(user_table(apps))
    columns = {name: schema_editor.quote_name(name) for name in ("email", "first_name", "last_name")}
    for name, definition in USER_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} {definition.format(**columns)}"
        )


def drop_user_indexes(apps, schema_editor) -> None:
    """Drop what ``add_user_indexes`` created."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in USER_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


# The site's own tables: trigram indexes on UPPER(column), the expression icontains
# compares. Not model state: SQLite rebuilds a table from its model state whenever a
# later migration alters it, and it has no GIN indexes to rebuild.
TRIGRAM_INDEXES = {
    "order_reference_trgm": ("backoffice_order", "reference"),
    "order_billing_name_trgm": ("backoffice_order", "billing_name"),
    "order_billing_email_trgm": ("backoffice_order", "billing_email"),
    "payment_reference_trgm": ("backoffice_payment", "reference"),
}


def add_trigram_indexes(apps, schema_editor) -> None:
    """Trigram indexes on the order and payment columns searched by fragment, on PostgreSQL."""
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for name, (table, column) in TRIGRAM_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {quote(table)} "
            f"USING gin (UPPER({quote(column)}) gin_trgm_ops)"
        )


def drop_trigram_indexes(apps, schema_editor) -> None:
    """Drop what ``add_trigram_indexes`` created."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0018_attention_count_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # CreateExtension already does nothing outside PostgreSQL.
        TrigramExtension(),
        migrations.RunPython(add_trigram_indexes, drop_trigram_indexes, elidable=False),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(Upper("billing_email"), name="order_billing_email_upper_idx"),
        ),
        migrations.RunPython(add_user_indexes, drop_user_indexes, elidable=False),
        # A pasted evt_ id (the unique index leads with the conference).
        migrations.AddIndex(
            model_name="stripeevent",
            index=models.Index(fields=["stripe_event_id"], name="stripe_event_id_idx"),
        ),
    ]
