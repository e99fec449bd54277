"""Re-syncing many orders from Stripe in one go: ``manage.py sync_stripe`` and the scheduled job.

Each order goes through ``PaymentService.sync_from_stripe``; an order that
fails (Stripe refused, the order's row stayed locked past the lock timeout) is
counted and the others go on, except that once Stripe is unreachable the
remaining orders are skipped (each would wait for the same time-out).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.utils.translation import ngettext

from backoffice.database_outage import database_unavailable
from backoffice.models import Order
from backoffice.services.payment.resync import sync_from_stripe
from backoffice.stripe_client import PaymentProviderError, StripeUnreachable


@dataclass
class ResyncRun:
    """What a batch re-sync did: counts, a line per changed order, a line per error."""

    checked: int = 0
    changed_payments: int = 0
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stripe_error: PaymentProviderError | None = None

    def summary(self) -> str:
        """ "Checked 3 orders, 1 payment changed, 0 errors." """
        return ", ".join(
            [
                ngettext("Checked %(count)d order", "Checked %(count)d orders", self.checked)
                % {"count": self.checked},
                ngettext(
                    "%(count)d payment changed",
                    "%(count)d payments changed",
                    self.changed_payments,
                )
                % {"count": self.changed_payments},
                ngettext("%(count)d error.", "%(count)d errors.", len(self.errors))
                % {"count": len(self.errors)},
            ]
        )


def resync_orders(orders: Iterable[Order]) -> ResyncRun:
    """Re-sync each order from Stripe; report what changed and what failed."""
    run = ResyncRun()
    for order in orders:
        if isinstance(run.stripe_error, StripeUnreachable):
            run.errors.append(f"{order.reference}: not checked (Stripe unreachable).")
            continue
        run.checked += 1
        try:
            report = sync_from_stripe(order)
        except PaymentProviderError as exc:
            run.stripe_error = exc
            run.errors.append(f"{order.reference}: error: {exc}")
            continue
        except ValidationError as exc:
            run.errors.append(f"{order.reference}: error: {' '.join(exc.messages)}")
            continue
        except DatabaseError as exc:
            if not database_unavailable(exc):
                raise  # a bug, not a busy database
            # The order's row stayed locked past the lock timeout (a long desk write,
            # say): nothing was changed; the next run tries again.
            run.errors.append(
                f"{order.reference}: not checked now: the database is busy "
                f"({type(exc.__cause__).__name__}); the next run tries again."
            )
            continue
        run.changed_payments += report.payments_changed
        if report.changed or report.notes:
            run.changes.append(report.summary())
    return run
