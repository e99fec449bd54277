"""Races for the PostgreSQL row-lock tests: calls released together, each in its own thread."""

import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections


def run_at_once(calls: list[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Run each call in a thread of its own, all released at once; return what each gave.

    A call's result is its return value, or the ``ValidationError`` it raised
    (a refusal); any other exception is raised here once every thread ended.
    Results are in the order of ``calls``. Each thread closes its database
    connections, as a request would.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except ValidationError as exc:
            results[index] = exc
        except BaseException as exc:  # surfaced below, in the test's own thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
    return results


def outcome(result: Any) -> str:
    """'refused' for a call that raised ``ValidationError``, else 'ok'."""
    return "refused" if isinstance(result, ValidationError) else "ok"
