"""The one module that talks to Stripe: a per-conference API client and webhook verification.

API calls return small typed values (``StripePaymentIntent``), and every
Stripe failure becomes a ``PaymentProviderError`` with a message a person can
read, so no other module needs to import ``stripe`` or read Stripe's JSON.
Webhook objects (a PaymentIntent, a refunded Charge) are parsed here into the
same typed values; a field of the wrong type or shape raises
``MalformedStripeEvent``.
"""

import dataclasses
import datetime
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from backoffice.models import MONEY, Conference, Order, StripeCustomer, StripeEvent
from backoffice.money import from_minor_units, has_valid_precision, to_minor_units

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)


class StripeNotConfigured(ValueError):
    """The conference has no Stripe secret key, so it cannot take card payments."""


class PaymentProviderError(Exception):
    """Stripe could not be reached or refused a request; the message is safe to show."""


class StripeUnreachable(PaymentProviderError):
    """Stripe could not be reached (connection error, time-out): it may or may not have acted."""


class PaymentIntentMissing(PaymentProviderError):
    """Stripe does not know the PaymentIntent (e.g. the conference changed Stripe accounts)."""


class CardDeclined(PaymentProviderError):
    """Stripe refused the card (declined, or a number it does not take); the message says why."""

    def __init__(self, message: str, code: str = "") -> None:
        """Keep Stripe's message for the attendee and its error code (e.g. ``card_declined``)."""
        super().__init__(message)
        self.code = code


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
        raise StripeUnreachable(
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
    ) -> "StripePaymentIntent":
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
    ) -> "StripePaymentIntent":
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
        return _answered_intent(intent.to_dict())

    def retrieve_payment_intent(self, intent_id: str) -> "StripePaymentIntent":
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
        return _answered_intent(intent.to_dict())

    def pay_with_card(self, intent_id: str, card: "TestCard") -> "StripePaymentIntent":
        """Attach a card to a PaymentIntent and confirm it; the intent afterwards.

        For the local fake's card form only (``services/local_stripe.py``): real
        Stripe takes card numbers from Stripe.js, never from a server. A refused
        card raises ``CardDeclined`` with Stripe's message.
        """
        params = {"type": "card", "card": dataclasses.asdict(card)}
        payment_intents = self._client.v1.payment_intents
        with _translate_stripe_errors("take the card"):
            try:
                method = self._client.v1.payment_methods.create(params)
                payment_intents.update(intent_id, {"payment_method": method.id})
                payment_intents.confirm(intent_id)
            except stripe.CardError as exc:
                message = exc.user_message or "Your card was declined."
                raise CardDeclined(message, exc.code or "") from exc
        return self.retrieve_payment_intent(intent_id)

    def cancel_payment_intent(self, intent_id: str) -> "StripePaymentIntent":
        """Cancel a PaymentIntent that can no longer be used."""
        return _answered_intent(
            self._call(
                "cancel the previous payment attempt",
                lambda: self._client.v1.payment_intents.cancel(
                    intent_id, None, {"idempotency_key": f"cancel-{intent_id}"}
                ),
            )
        )

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        charge_id: str,
        amount: Decimal,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> "StripeRefund":
        """Refund ``amount`` of a payment (by its intent, else its charge).

        Our reason travels in ``metadata`` (valid for real Stripe): Stripe's own
        ``reason`` parameter knows none of ours (event_cancelled, other), and
        localstripe refuses it, so it is never sent.
        """
        params: dict[str, Any] = {
            "amount": to_stripe_amount(amount, self.currency),
            "metadata": dict(metadata),
        }
        if payment_intent_id:
            params["payment_intent"] = payment_intent_id
        else:
            params["charge"] = charge_id
        answer = self._call(
            "refund the payment",
            lambda: self._client.v1.refunds.create(params, {"idempotency_key": idempotency_key}),
        )
        try:
            return parse_refund(answer, where="Stripe's answer")
        except MalformedStripeEvent as exc:
            raise PaymentProviderError(
                f"Stripe answered with a refund we cannot read: {exc}"
            ) from exc

    def list_disputes(self, payment_intent_id: str) -> list["StripeDispute"]:
        """Every dispute Stripe holds on a PaymentIntent (``GET /v1/disputes?payment_intent=``)."""
        return self._list_for_intent(
            self._client.v1.disputes, payment_intent_id, parse_dispute, "dispute"
        )

    def list_refunds(self, payment_intent_id: str) -> list["StripeRefund"]:
        """Every refund Stripe holds for a PaymentIntent (all pages, as Stripe lists them)."""
        return self._list_for_intent(
            self._client.v1.refunds, payment_intent_id, parse_refund, "refund"
        )

    def _list_for_intent[T](
        self, service: Any, payment_intent_id: str, parse: Callable[..., T], noun: str
    ) -> list[T]:
        """Every object of one kind Stripe lists for an intent, all pages, typed.

        Stripe errors and answers we cannot read are ``PaymentProviderError``.
        """
        params: dict[str, Any] = {"payment_intent": payment_intent_id, "limit": 100}
        with _translate_stripe_errors(f"list the payment's {noun}s"):
            listed = [item.to_dict() for item in service.list(params).auto_paging_iter()]
        try:
            return [
                parse(obj, where=f"Stripe's list of {noun}s[{i}]") for i, obj in enumerate(listed)
            ]
        except MalformedStripeEvent as exc:
            raise PaymentProviderError(
                f"Stripe answered with a {noun} we cannot read: {exc}"
            ) from exc


def _answered_intent(obj: dict[str, Any]) -> "StripePaymentIntent":
    """A PaymentIntent from an API answer, typed; an unreadable one is a provider error."""
    try:
        return parse_payment_intent(obj, where="Stripe's answer")
    except MalformedStripeEvent as exc:
        raise PaymentProviderError(f"Stripe answered with a payment we cannot read: {exc}") from exc


# The columns that store an event's envelope, and ids Stripe gives its objects.
EVENT_ID_MAX = StripeEvent._meta.get_field("stripe_event_id").max_length
EVENT_TYPE_MAX = StripeEvent._meta.get_field("type").max_length
OBJECT_ID_MAX = 255  # Payment.stripe_payment_intent_id and stripe_charge_id
# Stripe's events nest a few levels; anything far deeper is not one of them.
MAX_EVENT_DEPTH = 32
# The ledger's amounts: 12 digits with 2 decimal places, so below 10,000,000,000.
LEDGER_AMOUNT_LIMIT = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"])
# NUL and lone surrogates: valid in JSON escapes, refused by PostgreSQL (text and
# jsonb) and by UTF-8 encoders, so by every database driver.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _refuse_constant(name: str) -> None:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told not to."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refusing one too large for a float."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _storable_text(text: str) -> str:
    """The text with characters no database stores replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def _storable(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of parsed JSON that every database can store (see ``_UNSTORABLE``).

    Iterative, so a deeply nested body cannot exhaust the stack; a body nested
    deeper than ``MAX_EVENT_DEPTH`` raises ``InvalidWebhook``.
    """
    root: dict[str, Any] = {}
    pending: list[tuple[dict[str, Any] | list[Any], dict[str, Any] | list[Any], int]] = [
        (event, root, 1)
    ]
    while pending:
        source, target, depth = pending.pop()
        if depth > MAX_EVENT_DEPTH:
            raise InvalidWebhook(f"The body nests deeper than {MAX_EVENT_DEPTH} levels.")
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            if isinstance(value, str):
                value = _storable_text(value)
            elif isinstance(value, dict | list):
                copy: dict[str, Any] | list[Any] = {} if isinstance(value, dict) else []
                pending.append((value, copy, depth + 1))
                value = copy
            if isinstance(target, dict):
                target[_storable_text(key)] = value
            else:
                target.append(value)
    return root


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Check a webhook's Stripe-Signature (default tolerance) and return the event to store.

    Raises ``InvalidWebhook`` for a missing, forged or expired signature, or a
    body whose envelope cannot be stored: not a JSON object (NaN and infinite
    numbers are not JSON), nested too deep, an id that is not text of at most
    ``EVENT_ID_MAX`` characters, a type that is not text of at most
    ``EVENT_TYPE_MAX``. Its content (``data.object``) is checked only when it
    is applied. NUL characters and lone surrogates, which no database stores,
    are replaced by U+FFFD in the returned copy.
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
        event = json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidWebhook("The body is not valid JSON.") from exc
    if not isinstance(event, dict):
        raise InvalidWebhook("The body is not a Stripe event (not a JSON object).")
    event = _storable(event)
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidWebhook("The event has no id.")
    if len(event_id) > EVENT_ID_MAX:
        raise InvalidWebhook(f"The event id is longer than {EVENT_ID_MAX} characters.")
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type or len(event_type) > EVENT_TYPE_MAX:
        raise InvalidWebhook(f"The event has no type of at most {EVENT_TYPE_MAX} characters.")
    return event


class MalformedStripeEvent(ValueError):
    """A signed Stripe object with a field of the wrong type or shape; the message names it."""


@dataclass(frozen=True)
class StripePaymentIntent:
    """The fields of a PaymentIntent that the ledger acts on, checked and typed."""

    id: str
    currency: str  # upper-case
    amount: Decimal  # received (else requested), in the currency's units
    charge_id: str = ""
    failure_message: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    status: str = ""  # Stripe's, e.g. "requires_payment_method", "succeeded"
    client_secret: str = ""  # for the attendee's browser; never logged
    failed: bool = False  # the last attempt to pay it was declined


@dataclass(frozen=True)
class TestCard:
    """A test card typed into the local card form, as Stripe's API takes it."""

    __test__ = False  # not a pytest test class, despite its name

    number: str
    exp_month: str
    exp_year: str
    cvc: str


@dataclass(frozen=True)
class StripeCharge:
    """The fields of a refunded Charge that the ledger acts on, checked and typed."""

    id: str
    payment_intent_id: str
    currency: str  # upper-case
    amount_captured: Decimal  # captured (else charged), in the currency's units
    amount_refunded: Decimal
    metadata: Mapping[str, str] = field(default_factory=dict)
    # The charge's own list of refunds (``refunds.data``); None when it lists none.
    refunds: "tuple[StripeRefund, ...] | None" = None


@dataclass(frozen=True)
class StripeRefund:
    """The fields of a Refund that the ledger acts on, checked and typed."""

    id: str
    currency: str  # upper-case
    amount: Decimal
    status: str  # Stripe's: pending, requires_action, succeeded, failed, canceled
    charge_id: str = ""
    payment_intent_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StripeDispute:
    """The fields of a Dispute (a chargeback or an inquiry) that the ledger acts on, typed."""

    id: str
    currency: str  # upper-case
    amount: Decimal
    status: str  # Stripe's: warning_needs_response, …, needs_response, under_review, won, lost
    reason: str  # Stripe's, e.g. "fraudulent"
    created: datetime.datetime  # when Stripe opened it (aware, UTC)
    charge_id: str
    payment_intent_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


# Stripe's dispute statuses (``charge_refunded`` is gone from its API).
DISPUTE_STATUSES = frozenset(
    {
        "warning_needs_response",
        "warning_under_review",
        "warning_closed",
        "needs_response",
        "under_review",
        "won",
        "lost",
        "prevented",
    }
)


def _shown(value: Any) -> str:
    """A value for a staff message: JSON for scalars (cut to 40 characters), else its kind."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "missing"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + '…"'


class _Fields:
    """Checked reads of one Stripe object's fields; every refusal names the field."""

    def __init__(self, obj: Any, where: str) -> None:
        """Wrap ``obj`` found at ``where`` (e.g. ``data.object``); it must be a JSON object."""
        if not isinstance(obj, Mapping):
            raise MalformedStripeEvent(f"{where} is {_shown(obj)}, not an object.")
        self.obj = obj
        self.where = where

    def refuse(self, name: str, why: str) -> MalformedStripeEvent:
        """The error for field ``name``: which field, what value, why."""
        value = self.obj.get(name)
        return MalformedStripeEvent(f"{self.where}.{name} is {_shown(value)}, {why}.")

    def object_id(self, name: str, *, required: bool = False) -> str:
        """An id field, or an expanded object's id; "" when absent and not required."""
        value = self.obj.get(name)
        if isinstance(value, Mapping):
            return _Fields(value, f"{self.where}.{name}").object_id("id", required=required)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value or len(value) > OBJECT_ID_MAX:
            raise self.refuse(name, f"not a Stripe id (text of 1 to {OBJECT_ID_MAX} characters)")
        return value

    def currency(self) -> str:
        """The three-letter currency code, upper-case."""
        value = self.obj.get("currency")
        if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
            raise self.refuse("currency", "not a three-letter currency code")
        return value.upper()

    def minor_amount(self, name: str, currency: str) -> Decimal | None:
        """An amount in minor units as a Decimal in ``currency``; None when absent."""
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.refuse(name, "not a whole, non-negative number of minor units (cents)")
        amount = from_minor_units(value, currency)
        if amount >= LEDGER_AMOUNT_LIMIT:
            raise self.refuse(name, f"more than the ledger holds (below {LEDGER_AMOUNT_LIMIT:,})")
        if not has_valid_precision(amount, currency):
            raise self.refuse(name, f"finer than {currency} amounts can be")
        return amount

    def first_amount(self, names: tuple[str, ...], currency: str) -> Decimal:
        """The first of the amount fields that is present and not zero, else zero."""
        amounts = [self.minor_amount(name, currency) for name in names]
        return next((amount for amount in amounts if amount), Decimal(0))

    def text(self, name: str) -> str:
        """A free-text field; "" when absent."""
        value = self.obj.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.refuse(name, "not text")
        return value

    def timestamp(self, name: str) -> datetime.datetime:
        """A required Unix timestamp (whole seconds) as an aware UTC datetime."""
        value = self.obj.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**37:
            raise self.refuse(name, "not a Unix timestamp")
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)

    def metadata(self) -> dict[str, str]:
        """The metadata: an object whose values are text (Stripe stores only strings)."""
        value = self.obj.get("metadata")
        if value is None:
            return {}
        meta = _Fields(value, f"{self.where}.metadata")
        return {key: meta.text(key) for key in value}

    def nested(self, name: str) -> "_Fields | None":
        """An optional nested object's fields."""
        value = self.obj.get(name)
        return None if value is None else _Fields(value, f"{self.where}.{name}")


def _latest_charge_id(intent: _Fields) -> str:
    """The intent's charge: ``latest_charge``, else the last of the legacy ``charges`` list."""
    charge = intent.object_id("latest_charge")
    charges = intent.nested("charges")
    if charge or charges is None:
        return charge
    listed = charges.obj.get("data")
    if listed is None:
        return ""
    if not isinstance(listed, list):
        raise charges.refuse("data", "not a list of charges")
    if not listed:
        return ""
    where = f"{charges.where}.data[{len(listed) - 1}]"
    last = listed[-1]
    if isinstance(last, Mapping):
        return _Fields(last, where).object_id("id", required=True)
    if isinstance(last, str) and 0 < len(last) <= OBJECT_ID_MAX:
        return last
    raise MalformedStripeEvent(f"{where} is {_shown(last)}, not a charge or its id.")


def parse_payment_intent(obj: Any, where: str = "data.object") -> StripePaymentIntent:
    """Check a PaymentIntent from Stripe (an event's object or an API answer) and type it.

    Raises ``MalformedStripeEvent`` naming the field, its value and why.
    """
    intent = _Fields(obj, where)
    currency = intent.currency()
    error = intent.nested("last_payment_error")
    return StripePaymentIntent(
        id=intent.object_id("id", required=True),
        currency=currency,
        amount=intent.first_amount(("amount_received", "amount"), currency),
        charge_id=_latest_charge_id(intent),
        failure_message=error.text("message") if error is not None else "",
        metadata=intent.metadata(),
        status=intent.text("status"),
        client_secret=intent.text("client_secret"),
        failed=error is not None,
    )


def parse_charge(obj: Any, where: str = "data.object") -> StripeCharge:
    """Check a Charge from a ``charge.refunded`` event and type it.

    Raises ``MalformedStripeEvent`` naming the field, its value and why.
    """
    charge = _Fields(obj, where)
    currency = charge.currency()
    return StripeCharge(
        id=charge.object_id("id", required=True),
        payment_intent_id=charge.object_id("payment_intent"),
        currency=currency,
        amount_captured=charge.first_amount(("amount_captured", "amount"), currency),
        amount_refunded=charge.minor_amount("amount_refunded", currency) or Decimal(0),
        metadata=charge.metadata(),
        refunds=_charge_refunds(charge),
    )


def parse_refund(obj: Any, where: str = "data.object") -> StripeRefund:
    """Check a Refund from Stripe (an event's object, a charge's list, an API answer) and type it.

    Raises ``MalformedStripeEvent`` naming the field, its value and why.
    """
    refund = _Fields(obj, where)
    currency = refund.currency()
    amount = refund.minor_amount("amount", currency)
    if not amount:
        raise refund.refuse("amount", "not an amount above zero")
    return StripeRefund(
        id=refund.object_id("id", required=True),
        currency=currency,
        amount=amount,
        status=refund.text("status"),
        charge_id=refund.object_id("charge"),
        payment_intent_id=refund.object_id("payment_intent"),
        metadata=refund.metadata(),
    )


def parse_dispute(obj: Any, where: str = "data.object") -> StripeDispute:
    """Check a Dispute from Stripe (a ``charge.dispute.*`` event's object, an API answer), typed.

    Raises ``MalformedStripeEvent`` naming the field, its value and why.
    """
    dispute = _Fields(obj, where)
    currency = dispute.currency()
    amount = dispute.minor_amount("amount", currency)
    if amount is None:
        raise dispute.refuse("amount", "not an amount")
    status = dispute.text("status")
    if status not in DISPUTE_STATUSES:
        raise dispute.refuse(
            "status", f"not a dispute status ({', '.join(sorted(DISPUTE_STATUSES))})"
        )
    return StripeDispute(
        id=dispute.object_id("id", required=True),
        currency=currency,
        amount=amount,
        status=status,
        reason=dispute.text("reason"),
        created=dispute.timestamp("created"),
        charge_id=dispute.object_id("charge", required=True),
        payment_intent_id=dispute.object_id("payment_intent"),
        metadata=dispute.metadata(),
    )


def _charge_refunds(charge: _Fields) -> tuple[StripeRefund, ...] | None:
    """The refunds listed on a Charge (``refunds.data``), or None when the charge lists none."""
    listed = charge.nested("refunds")
    if listed is None:
        return None
    data = listed.obj.get("data")
    if data is None:
        return None
    if not isinstance(data, list):
        raise listed.refuse("data", "not a list of refunds")
    return tuple(parse_refund(item, f"{listed.where}.data[{i}]") for i, item in enumerate(data))


def event_object(event: Mapping[str, Any]) -> Any:
    """The object a stored event is about (``data.object``), unchecked."""
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise MalformedStripeEvent(f"data is {_shown(data)}, not an object.")
    return data.get("object")
