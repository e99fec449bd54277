"""The probe app: one row in PROBE_TABLE per ``order_paid`` a gunicorn worker sends."""

import os
from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started
from django.db import connection

# Created with raw SQL by tests/load/server.py (the test process), not by a migration:
# the test process does not install this app, so pytest-django's flush never empties it.
PROBE_TABLE = "load_probe_order_paid"


def count_order_paid(sender: Any, order: Any, **kwargs: Any) -> None:
    """Insert one row for this signal, in autocommit (it is sent after the commit)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PROBE_TABLE} (order_id, pid) VALUES (%s, %s)",  # noqa: S608
            [order.pk, os.getpid()],
        )


def forget_content_types(sender: Any, **kwargs: Any) -> None:
    """Drop the worker's cached content types at each request.

    The test process flushes the database after every test, and PostgreSQL
    hands the re-created content types new ids; a long-lived worker would
    otherwise write admin history (``LogEntry``) against ids that no longer
    exist. Production never deletes content types, so it never needs this.
    """
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


class ProbeConfig(AppConfig):
    """Connects the ``order_paid`` counter when the server's workers start."""

    name = "tests.load.probe"
    label = "load_probe"

    def ready(self) -> None:
        """Count every ``order_paid`` the server sends."""
        from backoffice.signals import order_paid

        order_paid.connect(count_order_paid, dispatch_uid="load_probe_count_order_paid")
        request_started.connect(forget_content_types, dispatch_uid="load_probe_content_types")
