"""The one module that talks to Stripe: a per-conference API client and webhook verification.

Everything returned to the rest of the code is a plain ``dict`` (Stripe's JSON),
and every Stripe failure becomes a ``PaymentProviderError`` with a message a
person can read, so no other module needs to import ``stripe``.
"""

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from backoffice.models import Conference, Order, StripeCustomer
from backoffice.money import from_minor_units, to_minor_units

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)


class StripeNotConfigured(ValueError):
    """The conference has no Stripe secret key, so it cannot take card payments."""


class PaymentProviderError(Exception):
    """Stripe could not be reached or refused a request; the message is safe to show."""


class PaymentIntentMissing(PaymentProviderError):
    """Stripe does not know the PaymentIntent (e.g. the conference changed Stripe accounts)."""


class _CustomerMissing(Exception):
    """Stripe does not know the stored customer id (internal to this module)."""


class InvalidWebhook(ValueError):
    """A webhook body whose signature, timestamp or JSON is not acceptable."""


@contextmanager
def _translate_stripe_errors(action: str) -> Iterator[None]:
    """Turn any ``stripe.StripeError`` raised inside the block into a ``PaymentProviderError``."""
    try:
        yield
    except stripe.APIConnectionError as exc:
        logger.warning("Stripe unreachable while trying to %s: %s", action, exc)
        raise PaymentProviderError(
            f"Could not reach Stripe to {action}. Please try again in a few minutes."
        ) from exc
    except stripe.StripeError as exc:
        logger.warning("Stripe refused to %s: %s", action, exc)
        detail = exc.user_message or "the request was refused"
        raise PaymentProviderError(f"Stripe could not {action}: {detail}") from exc


# stripe-python's backoff between tries: 0.5 s, doubling, at most 5 s (jitter only shortens it).
_RETRY_DELAY_SECONDS = 0.5
_RETRY_DELAY_MAX_SECONDS = 5.0


def longest_call_seconds(timeout: float, retries: int) -> float:
    """The longest one API call can take when every try times out, backoff included."""
    backoff = sum(
        min(_RETRY_DELAY_SECONDS * 2**attempt, _RETRY_DELAY_MAX_SECONDS)
        for attempt in range(retries)
    )
    return timeout * (retries + 1) + backoff


def to_stripe_amount(amount: Decimal, currency: str) -> int:
    """Convert a Decimal amount to the integer minor units Stripe expects (JPY: yen, USD: cents)."""
    return to_minor_units(amount, currency)


def from_stripe_amount(minor: int, currency: str) -> Decimal:
    """Convert Stripe's integer minor units back to an exact Decimal amount."""
    return from_minor_units(minor, currency)


class StripeClient:
    """Stripe's v1 API on behalf of one conference (its own secret key)."""

    def __init__(self, conference: Conference) -> None:
        """Build a client for the conference; raise ``StripeNotConfigured`` without a key."""
        if not conference.stripe_secret_key:
            raise StripeNotConfigured(
                f"The conference “{conference.name}” ({conference.slug}) has no Stripe "
                "secret key; add one on the conference's admin page to take card payments."
            )
        self.conference = conference
        base = settings.STRIPE_API_BASE
        self._client = stripe.StripeClient(
            conference.stripe_secret_key,
            base_addresses={"api": base} if base else None,
            max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
        )

    @property
    def currency(self) -> str:
        """The conference's currency code, upper-case."""
        return self.conference.currency.upper()

    def _call(self, action: str, fn: Callable[[], Any]) -> dict[str, Any]:
        """Run one API call and return its JSON as a plain dict."""
        with _translate_stripe_errors(action):
            return fn().to_dict()

    def get_or_create_customer(self, user: "AbstractBaseUser") -> StripeCustomer:
        """Return the user's Stripe customer at this conference, creating it once.

        Two concurrent first payments may both create a customer at Stripe (the
        idempotency key makes real Stripe return the same one); the unique
        (user, conference) constraint keeps one row and the loser reuses it.
        """
        existing = StripeCustomer.objects.filter(user=user, conference=self.conference).first()
        if existing is not None:
            return existing
        joined = int(user.date_joined.timestamp()) if getattr(user, "date_joined", None) else 0
        params: dict[str, Any] = {
            "metadata": {"user_id": str(user.pk), "conference": self.conference.slug},
        }
        if getattr(user, "email", ""):
            params["email"] = user.email
        full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
        if full_name:
            params["name"] = full_name
        customer = self._call(
            "create a customer",
            lambda: self._client.v1.customers.create(
                params,
                {"idempotency_key": f"customer-{self.conference.pk}-{user.pk}-{joined}"},
            ),
        )
        try:
            with transaction.atomic():
                return StripeCustomer.objects.create(
                    user=user, conference=self.conference, stripe_customer_id=customer["id"]
                )
        except IntegrityError:
            winner = StripeCustomer.objects.get(user=user, conference=self.conference)
            if winner.stripe_customer_id != customer["id"]:
                self._delete_orphan_customer(customer["id"])
            return winner

    def _delete_orphan_customer(self, customer_id: str) -> None:
        """Best effort: delete a customer created by the loser of a race."""
        try:
            self._client.v1.customers.delete(customer_id)
        except stripe.StripeError:
            logger.warning("Could not delete duplicate Stripe customer %s", customer_id)

    def create_payment_intent(
        self, order: Order, *, amount: Decimal, idempotency_key: str
    ) -> dict[str, Any]:
        """Create a PaymentIntent for ``amount`` of the order, for the attendee's Stripe customer.

        A stored customer that Stripe no longer knows (the conference changed
        Stripe accounts) is replaced once.
        """
        customer = self.get_or_create_customer(order.user)
        try:
            return self._create_payment_intent(
                order, amount, customer.stripe_customer_id, idempotency_key
            )
        except _CustomerMissing:
            logger.warning(
                "Stripe customer %s is gone; creating a new one", customer.stripe_customer_id
            )
            StripeCustomer.objects.filter(pk=customer.pk).delete()
            customer = self.get_or_create_customer(order.user)
            return self._create_payment_intent(
                order, amount, customer.stripe_customer_id, f"{idempotency_key}-{customer.pk}"
            )

    def _create_payment_intent(
        self, order: Order, amount: Decimal, customer_id: str, idempotency_key: str
    ) -> dict[str, Any]:
        """One PaymentIntent create call, tagged with the order's metadata."""
        params: dict[str, Any] = {
            "amount": to_stripe_amount(amount, self.currency),
            "currency": self.currency.lower(),
            "customer": customer_id,
            "metadata": {
                "order_id": str(order.pk),
                "order_reference": order.reference,
                "conference": self.conference.slug,
            },
        }
        try:
            intent = self._client.v1.payment_intents.create(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as exc:
            missing = exc.http_status == 404 or exc.code == "resource_missing"
            if missing and exc.param in (None, "customer"):
                raise _CustomerMissing(customer_id) from exc
            with _translate_stripe_errors("start the payment"):
                raise
        except stripe.StripeError:
            with _translate_stripe_errors("start the payment"):
                raise
        return intent.to_dict()

    def retrieve_payment_intent(self, intent_id: str) -> dict[str, Any]:
        """Fetch a PaymentIntent's current state; ``PaymentIntentMissing`` if Stripe has none."""
        try:
            intent = self._client.v1.payment_intents.retrieve(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise PaymentIntentMissing(
                    f"Stripe has no payment {intent_id} for {self.conference.slug}."
                ) from exc
            with _translate_stripe_errors("look up the payment"):
                raise
        except stripe.StripeError:
            with _translate_stripe_errors("look up the payment"):
                raise
        return intent.to_dict()

    def cancel_payment_intent(self, intent_id: str) -> dict[str, Any]:
        """Cancel a PaymentIntent that can no longer be used."""
        return self._call(
            "cancel the previous payment attempt",
            lambda: self._client.v1.payment_intents.cancel(
                intent_id, None, {"idempotency_key": f"cancel-{intent_id}"}
            ),
        )


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Check a webhook's Stripe-Signature (default tolerance) and return the parsed event.

    Raises ``InvalidWebhook`` for a missing, forged or expired signature or a
    body that is not a JSON object with an event id and type.
    """
    if not secret:
        raise InvalidWebhook("This conference has no webhook secret.")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE
        )
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(str(exc)) from exc
    except UnicodeDecodeError as exc:  # the stripe package decodes the body as UTF-8 first
        raise InvalidWebhook("The body is not UTF-8 text.") from exc
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook("The body is not valid JSON.") from exc
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and event["id"]
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidWebhook("The body is not a Stripe event.")
    return event
