"""Shared fixtures: users, conferences and orders."""

import os
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from hypothesis import settings as hypothesis_settings

from backoffice.models import Conference, Order, OrderLineItem
from backoffice.services.ledger_totals import recount_order

# localstripe and Stripe fixtures, shared with every test package (see the module).
pytest_plugins = ["tests.stripe_fixtures"]

# Property-based tests (tests/hostile/): a developer's run explores new random examples
# each time (and replays failures from .hypothesis/); CI replays one fixed set, so a
# submission never lands or fails by luck. Either way a failure prints how to reproduce it.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")


def pytest_configure(config: pytest.Config) -> None:
    """Serve static files from the apps' folders: tests don't run collectstatic.

    Production uses whitenoise's manifest storage, which needs collected files;
    tests/test_gunicorn.py runs collectstatic and checks that path for real.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Put the SQLite test database in a file, so the live server has a connection of its own.

    Django's default in-memory test database makes the live server thread share the
    test's single connection: a request arriving while the test queries (a Stripe
    webhook, say) interleaves two transactions on it and breaks both. A file database
    behaves like the real one (each thread its own connection, SQLite's own locking).
    """
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        test_settings = database.setdefault("TEST", {})
        test_settings["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@pytest.fixture
def conference(db) -> Conference:
    """A USD conference."""
    return Conference.objects.create(name="PyCon Test", slug="pycon-test", currency="USD")


@pytest.fixture
def jpy_conference(db) -> Conference:
    """A conference charging in a zero-decimal currency."""
    return Conference.objects.create(name="PyCon JP", slug="pycon-jp", currency="JPY")


@pytest.fixture
def attendee(db):
    """An attendee without staff rights."""
    return get_user_model().objects.create_user(
        username="attendee", email="attendee@example.com", password="attendee-pass-123"
    )


@pytest.fixture
def staff_user(db):
    """A staff member."""
    return get_user_model().objects.create_user(
        username="clerk", email="clerk@example.com", password="clerk-pass-123", is_staff=True
    )


@pytest.fixture
def make_order(db, conference, attendee) -> Callable[..., Order]:
    """Build a pending order with one line item for the given total."""

    def build(total: str | Decimal = "100.00", *, conference=conference, user=attendee, **kw):
        total = Decimal(total)
        order = Order.objects.create(
            conference=conference,
            user=user,
            subtotal=total,
            total=total,
            billing_name=kw.pop("billing_name", "Ada Lovelace"),
            billing_email=kw.pop("billing_email", "ada@example.com"),
            **kw,
        )
        OrderLineItem.objects.create(
            order=order,
            description="Conference ticket",
            quantity=1,
            unit_price=total,
            line_total=total,
        )
        recount_order(order)  # as registration would: the dashboard's totals count it
        return order

    return build


@pytest.fixture(autouse=True)
def exact_attention_badge(settings) -> None:
    """Count the Needs attention badge on every page: a cached count would leak between tests."""
    settings.BACKOFFICE_ATTENTION_BADGE_SECONDS = 0


@pytest.fixture(autouse=True)
def fast_password_hasher(settings) -> None:
    """Hash test passwords with a fast hasher; PBKDF2 makes every user fixture slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def run_tasks(db) -> Callable[[], int]:
    """Run the queued background tasks now, as the worker would; returns how many ran."""
    from tests.worker import run_queued_tasks

    return run_queued_tasks


@pytest.fixture
def media_root(settings, tmp_path):
    """The default storage in a temporary folder (background exports write files there)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
