"""A refused or lost database connection, or a busy one, answers 503 with Retry-After;
other errors stay 500s."""

import sqlite3

import pytest
from django.db import connection, transaction
from django.db.utils import ConnectionHandler, DatabaseError
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from backoffice.database_outage import database_unavailable
from backoffice.models import Conference
from tests.deploy_env import free_port, shared_database_url
from tests.fault_injection import table_locked

# The test database is not needed, but pytest-django only lets code connect under this mark.
pytestmark = pytest.mark.django_db


def refused_postgresql():
    """A PostgreSQL connection to a port where nothing listens (a real, refused connect)."""
    dead = {"ENGINE": "django.db.backends.postgresql", "NAME": "backoffice", "USER": "postgres"}
    return ConnectionHandler({"default": {**dead, "HOST": "127.0.0.1", "PORT": free_port()}})[
        "default"
    ]


def unopenable_sqlite(tmp_path):
    """A SQLite database in a folder that does not exist."""
    name = str(tmp_path / "missing-folder" / "db.sqlite3")
    return ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": name}})[
        "default"
    ]


def error_of(fn) -> DatabaseError:
    """The database error ``fn()`` raises."""
    with pytest.raises(DatabaseError) as caught:
        fn()
    return caught.value


def refused_view(request: HttpRequest) -> HttpResponse:
    """A view whose first query finds the database refusing connections."""
    refused_postgresql().ensure_connection()
    return HttpResponse("unreachable")


def bad_query_view(request: HttpRequest) -> HttpResponse:
    """A view with a bug: it queries a table that does not exist."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    return HttpResponse("unreachable")


urlpatterns = [path("refused/", refused_view), path("bad-query/", bad_query_view)]


def test_a_refused_postgresql_connection_is_unreachable() -> None:
    assert database_unavailable(error_of(refused_postgresql().ensure_connection))


def test_a_sqlite_file_that_cannot_be_opened_is_unreachable(tmp_path) -> None:
    assert database_unavailable(error_of(unopenable_sqlite(tmp_path).ensure_connection))


def test_a_bad_query_is_not_an_outage() -> None:
    def query() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")

    assert not database_unavailable(error_of(query))


@pytest.mark.postgres
def test_a_lock_wait_that_ran_out_is_unavailable() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("LOCK TABLE and lock_timeout are PostgreSQL features")

    def query() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '100ms'")
            cursor.execute(f"SELECT * FROM {Conference._meta.db_table}")  # noqa: S608

    with table_locked(shared_database_url(), Conference._meta.db_table, release_after=10):
        error = error_of(query)

    assert error.__cause__.sqlstate == "55P03"
    assert database_unavailable(error)


@pytest.mark.urls(__name__)
def test_a_page_that_cannot_reach_the_database_answers_503_with_retry_after() -> None:
    response = Client(raise_request_exception=False).get("/refused/")

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "cannot reach its database, or it is busy" in response.content.decode()
    assert response["X-Frame-Options"] == "DENY"  # the usual headers still apply


@pytest.mark.urls(__name__)
def test_a_bad_query_still_answers_500() -> None:
    response = Client(raise_request_exception=False).get("/bad-query/")

    assert response.status_code == 500
    assert "Retry-After" not in response


def postgresql_error(sql: str) -> DatabaseError:
    """The error PostgreSQL itself raises for the statement (inside a transaction)."""

    def query() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)

    return error_of(query)


def raised_by_postgresql(sqlstate: str) -> DatabaseError:
    """An error with this SQLSTATE, raised by the PostgreSQL server (not built in Python)."""
    return postgresql_error(
        f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"
    )


@pytest.mark.postgres
def test_a_statement_that_ran_out_of_time_is_unavailable() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("statement_timeout is a PostgreSQL setting")

    error = postgresql_error("SET LOCAL statement_timeout = '50ms'; SELECT pg_sleep(2)")

    assert error.__cause__.sqlstate == "57014"
    assert database_unavailable(error)


@pytest.mark.postgres
@pytest.mark.parametrize("sqlstate", ["40001", "40P01"], ids=["serialization-failure", "deadlock"])
def test_a_transaction_the_database_rolled_back_for_concurrency_is_unavailable(sqlstate) -> None:
    """Retrying the same request succeeds: busy, not a bug."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLSTATEs are PostgreSQL's")

    error = raised_by_postgresql(sqlstate)

    assert error.__cause__.sqlstate == sqlstate
    assert database_unavailable(error)


@pytest.mark.postgres
def test_other_errors_raised_by_postgresql_are_not_an_outage() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLSTATEs are PostgreSQL's")

    assert not database_unavailable(raised_by_postgresql("22012"))  # division by zero


def test_a_sqlite_database_locked_by_another_connection_is_unavailable(tmp_path) -> None:
    name = str(tmp_path / "db.sqlite3")
    holder = sqlite3.connect(name, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    locked = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": name,
                "OPTIONS": {"timeout": 0.05},
            }
        }
    )["default"]

    def query() -> None:
        with locked.cursor() as cursor:
            cursor.execute("SELECT * FROM t")

    try:
        error = error_of(query)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        locked.close()

    assert "database is locked" in str(error)
    assert database_unavailable(error)
