"""Rules for orders imported from another registration system (CSV/XLSX).

An import only creates orders, PENDING or CANCELLED: money that was already
collected elsewhere is recorded afterwards as payments, so the ledger stays
the only source of what was paid.

Every refusal is a sentence a finance clerk can act on: the row, the column,
the value and why. Conferences and attendees are looked up once per file, not
once per row, so a preview of thousands of rows stays well inside the worker
timeout; ``save_orders`` writes a batch of checked orders in a few queries.
"""

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.functions import Lower

from backoffice.models import (
    MONEY,
    ZERO,
    Conference,
    Order,
    OrderLineItem,
    generate_order_reference,
)
from backoffice.money import has_valid_precision, quantum
from backoffice.services.ledger_totals import count_new_orders
from backoffice.spreadsheet import looks_like_formula

IMPORTABLE_STATUSES = (Order.Status.PENDING, Order.Status.CANCELLED)
IMPORTED_LINE_ITEM = "Imported registration"

# The columns as the orders export names them; the import reads the same names.
CONFERENCE, ATTENDEE, EMAIL, STATUS = "Conference", "Attendee", "Email", "Status"
SUBTOTAL, DISCOUNT, TOTAL = "Subtotal", "Discount", "Total"
COLUMNS = (CONFERENCE, ATTENDEE, EMAIL, STATUS, SUBTOTAL, DISCOUNT, TOTAL)
REQUIRED_COLUMNS = (CONFERENCE, EMAIL, SUBTOTAL, TOTAL)

AMOUNT_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
# Unicode's control characters (category Cc) and lone surrogates: no name or e-mail holds
# them, and PostgreSQL refuses NUL in text.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
LARGEST_AMOUNT = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) - Decimal("0.01")
NAME_MAX_LENGTH = Order._meta.get_field("billing_name").max_length
EMAIL_MAX_LENGTH = Order._meta.get_field("billing_email").max_length
LOOKUP_CHUNK = 1000
MEGABYTE = 1024 * 1024


# --- Whole-file limits -------------------------------------------------------------


def max_bytes() -> int:
    """The largest import file accepted (``BACKOFFICE_IMPORT_MAX_BYTES``)."""
    return settings.BACKOFFICE_IMPORT_MAX_BYTES


def max_rows() -> int:
    """The most order rows one file may hold (``BACKOFFICE_IMPORT_MAX_ROWS``)."""
    return settings.BACKOFFICE_IMPORT_MAX_ROWS


def describe_size(size: int) -> str:
    """A file size as a clerk reads it: '7.2 MB', '5 MB', '12 KB' (rounded up)."""
    if size >= MEGABYTE:
        tenths = math.ceil(size * 10 / MEGABYTE) / 10
        return f"{tenths:g} MB"
    return f"{math.ceil(size / 1024):,} KB"


def check_file_size(size: int) -> None:
    """Refuse a file larger than the import limit, before reading it."""
    limit = max_bytes()
    if size > limit:
        raise ValidationError(
            f"This file is {describe_size(size)}; the limit is {describe_size(limit)}. "
            "Split it into smaller files."
        )


def refuse_too_many_rows() -> ValidationError:
    """The refusal of a file with more order rows than the limit (raised while reading it)."""
    return ValidationError(
        f"This file has more than {max_rows():,} rows of orders; the limit is {max_rows():,}. "
        "Split it into smaller files."
    )


def refuse_empty_file() -> ValidationError:
    """The refusal of a file holding no order rows."""
    return ValidationError(
        "This file has no orders: the first row must name the columns "
        f"({', '.join(COLUMNS)}) and each following row holds one order."
    )


def refuse_missing_upload() -> ValidationError:
    """The refusal of a confirm step whose uploaded file is gone (already imported, or expired)."""
    return ValidationError(
        "The uploaded file is no longer waiting to be imported: it was imported already "
        "(check the orders list before uploading it again) or its preview is more than a "
        "day old."
    )


def canonical_headers(headers: Iterable[object]) -> list[str]:
    """The header row with known column names spelled as the export spells them."""
    known = {column.lower(): column for column in COLUMNS}
    canonical = []
    for header in headers:
        text = "" if header is None else str(header).strip()
        canonical.append(known.get(text.lower(), text))
    return canonical


def check_columns(headers: Sequence[str]) -> None:
    """Refuse a file missing a column the import needs."""
    missing = [column for column in REQUIRED_COLUMNS if column not in headers]
    if missing:
        names = " or ".join(missing)
        raise ValidationError(
            f"This file has no {names} column. "
            f"Its first row must name the columns: {', '.join(COLUMNS)} "
            f"({', '.join(REQUIRED_COLUMNS)} are required)."
        )


# --- One cell ----------------------------------------------------------------------


def shown(value: object) -> str:
    """A cell's value quoted for a message, shortened when long."""
    text = str(value)
    return f"“{text[:40]}…”" if len(text) > 40 else f"“{text}”"


def amount_example(currency: str | None) -> str:
    """How to write an amount in the currency: '12.50', or '1250' for whole amounts."""
    return "1250" if currency and quantum(currency) == 1 else "12.50"


def parse_text(value: object) -> str:
    """A text cell, stripped; refused when a spreadsheet would run it or it holds control codes."""
    text = "" if value is None else str(value).strip()
    if looks_like_formula(text):
        raise ValidationError(
            f"{shown(text)} looks like a spreadsheet formula; "
            f"type the text without the leading “{text[0]}”."
        )
    if CONTROL_CHARACTERS.search(text):
        raise ValidationError(f"{shown(text)} holds control characters; type plain text.")
    return text


def parse_amount(value: object, *, currency: str | None, required: bool = True) -> Decimal:
    """An amount cell as a Decimal with at most the currency's decimal places."""
    example = amount_example(currency)
    if isinstance(value, bool):
        raise ValidationError(f"{shown(value)} is not an amount; write it like {example}.")
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    else:
        text = "" if value is None else str(value).strip()
        if not text:
            if required:
                raise ValidationError(f"An amount is required; write it like {example}.")
            return ZERO
        if text.startswith("-") and AMOUNT_PATTERN.fullmatch(text[1:]):
            raise ValidationError(f"{shown(text)} is negative; amounts cannot be negative.")
        if not AMOUNT_PATTERN.fullmatch(text):
            raise ValidationError(f"{shown(text)} is not an amount; write it like {example}.")
        amount = Decimal(text)
    if not amount.is_finite():
        raise ValidationError(f"{shown(value)} is not an amount; write it like {example}.")
    if amount < ZERO:
        raise ValidationError(f"{shown(value)} is negative; amounts cannot be negative.")
    if amount > LARGEST_AMOUNT:
        raise ValidationError(
            f"{shown(value)} is too large; the largest amount is {LARGEST_AMOUNT}."
        )
    if not has_valid_precision(amount, currency or "USD"):
        allowed = currency or "an amount"
        raise ValidationError(
            f"{shown(value)} has more decimal places than {allowed} allows; "
            f"write it like {example}."
        )
    return amount.quantize(quantum(currency or "USD"))


def parse_status(value: object) -> str:
    """The status code for a status cell (code or label; blank is pending)."""
    text = parse_text(value)
    if not text:
        return Order.Status.PENDING
    for status in IMPORTABLE_STATUSES:
        if text.lower() in (status.value, status.label.lower()):
            return status.value
    allowed = ", ".join(str(status.label) for status in IMPORTABLE_STATUSES)
    raise ValidationError(
        f"{shown(text)} cannot be imported as a status; use one of: {allowed}. "
        "Record money already collected as payments after the import."
    )


def parse_email(value: object) -> str:
    """An e-mail cell, required and valid."""
    email = parse_text(value)
    if not email:
        raise ValidationError("An e-mail address is required.")
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"{shown(email)} is longer than {EMAIL_MAX_LENGTH} characters; "
            "no e-mail address is that long."
        )
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(f"{shown(email)} is not a valid e-mail address.") from None
    return email


def parse_name(value: object) -> str:
    """An attendee name cell (may be blank)."""
    name = parse_text(value)
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(f"{shown(name)} is longer than {NAME_MAX_LENGTH} characters.")
    return name


# --- One file ----------------------------------------------------------------------


class OrderImport:
    """Turns the rows of one file into unsaved orders, then saves them in batches.

    Conferences are read once; attendees are looked up by e-mail in a few
    queries for the whole file (``prefetch_attendees``); attendees not found
    are built unsaved, shared by every row with their e-mail, and saved with
    the first batch of orders that needs them.
    """

    def __init__(self) -> None:
        self.conferences_by_slug: dict[str, Conference] = {}
        self.conferences_by_name: dict[str, list[Conference]] = {}
        for conference in Conference.objects.order_by("pk"):
            self.conferences_by_slug[conference.slug] = conference
            self.conferences_by_name.setdefault(conference.name, []).append(conference)
        self.attendees: dict[str, AbstractBaseUser] = {}
        self.looked_up: set[str] = set()  # lower-cased e-mails already searched for

    def prefetch_attendees(self, emails: Iterable[object]) -> None:
        """Load the existing accounts for these e-mail cells (case-insensitively)."""
        wanted = set()
        for value in emails:
            try:
                wanted.add(parse_email(value).lower())
            except ValidationError:
                continue  # reported with its row by order_from_row
        user_model = get_user_model()
        for chunk in itertools.batched(sorted(wanted - self.looked_up), LOOKUP_CHUNK):
            self.looked_up.update(chunk)
            users = (
                user_model.objects.annotate(email_lower=Lower("email"))
                .filter(email_lower__in=chunk)
                .order_by("-pk")
            )
            for user in users:  # the oldest account wins, as with a one-by-one lookup
                self.attendees[user.email.lower()] = user

    def conference(self, value: object) -> Conference:
        """The conference named by a cell: its slug, else its exact name."""
        text = parse_text(value)
        if not text:
            raise ValidationError("A conference is required: write its slug or its name.")
        found = self.conferences_by_slug.get(text)
        if found is not None:
            return found
        named = self.conferences_by_name.get(text, [])
        if len(named) > 1:
            raise ValidationError(f"More than one conference is named {shown(text)}; use its slug.")
        if not named:
            raise ValidationError(f"No conference has the slug or name {shown(text)}.")
        return named[0]

    def attendee(self, *, email: str, name: str) -> AbstractBaseUser:
        """The account with this e-mail; a new, unsaved one when none exists."""
        key = email.lower()
        if key not in self.looked_up:
            self.prefetch_attendees([email])
        user = self.attendees.get(key)
        if user is None:
            user_model = get_user_model()
            first, _, last = name.partition(" ")
            user = user_model(email=email, first_name=first[:150], last_name=last.strip()[:150])
            self.attendees[key] = user
        return user

    def fill_order(self, order: Order, row: Mapping[str, object], *, row_number: int) -> None:
        """Fill a new order from one row; refuse the row with a sentence per bad cell."""
        errors: dict[str, list[str]] = {}

        def cell(column: str, parse, **kwargs: object) -> object:  # noqa: ANN001
            """Parse one cell, noting its refusal under its column."""
            try:
                return parse(row.get(column), **kwargs)
            except ValidationError as exc:
                errors[column] = [f"Row {row_number}, column {column}: {exc.messages[0]}"]
                return None

        conference = cell(CONFERENCE, self.conference)
        currency = conference.currency if conference is not None else None
        name = cell(ATTENDEE, parse_name)
        email = cell(EMAIL, parse_email)
        order.status = cell(STATUS, parse_status)
        order.subtotal = cell(SUBTOTAL, parse_amount, currency=currency)
        order.discount_amount = cell(DISCOUNT, parse_amount, currency=currency, required=False)
        order.total = cell(TOTAL, parse_amount, currency=currency)
        amounts = (order.subtotal, order.discount_amount, order.total)
        if None not in amounts and order.subtotal - order.discount_amount != order.total:
            expected = order.subtotal - order.discount_amount
            errors[TOTAL] = [
                f"Row {row_number}, column {TOTAL}: {shown(row.get(TOTAL))} is not the subtotal "
                f"{order.subtotal} minus the discount {order.discount_amount}, which is {expected}."
            ]
        if errors:
            raise ValidationError(errors)
        order.conference = conference
        order.billing_name = name
        order.billing_email = email
        order.user = self.attendee(email=email, name=name)

    @transaction.atomic
    def save_orders(self, orders: Sequence[Order]) -> None:
        """Save checked orders: their new attendees, then the orders, then one line item each."""
        new_users = list({id(o.user): o.user for o in orders if o.user.pk is None}.values())
        if new_users:
            assign_usernames(new_users)
            get_user_model().objects.bulk_create(new_users)
        assign_references(orders)
        for order in orders:
            order.user = order.user  # the attendee's id, now that it is saved
        count_new_orders(orders)  # the dashboard's totals, in this transaction
        Order.objects.bulk_create(orders)
        OrderLineItem.objects.bulk_create(imported_line_item(order) for order in orders)


def assign_usernames(users: Sequence[AbstractBaseUser]) -> None:
    """Give new accounts their e-mail as username ('#2', '#3'… when taken), and no password."""
    user_model = get_user_model()
    bases = {user.email.lower()[:140] for user in users}
    taken = set()
    for chunk in itertools.batched(sorted(bases), LOOKUP_CHUNK):
        prefixes = user_model.objects.filter(username__in=chunk).values_list("username", flat=True)
        taken.update(prefixes)
    suffixed = [base for base in bases if base in taken]
    for base in suffixed:  # rare: look up that base's suffixes once
        taken.update(
            user_model.objects.filter(username__startswith=f"{base}#").values_list(
                "username", flat=True
            )
        )
    for user in users:
        base = user.email.lower()[:140]
        username = base
        for suffix in itertools.count(2):
            if username not in taken:
                break
            username = f"{base}#{suffix}"
        taken.add(username)
        user.username = username
        user.set_unusable_password()


def assign_references(orders: Sequence[Order]) -> None:
    """Give new orders random references taken neither by another order nor in the batch."""
    pending = [order for order in orders if not order.reference]
    used: set[str] = set()
    while pending:
        for order in pending:
            order.reference = generate_order_reference()
        wanted = [order.reference for order in pending]
        taken = set(Order.objects.filter(reference__in=wanted).values_list("reference", flat=True))
        retry = []
        for order in pending:
            if order.reference in taken or order.reference in used:
                retry.append(order)
            else:
                used.add(order.reference)
        pending = retry


def imported_line_item(order: Order) -> OrderLineItem:
    """The one line item of an imported order, carrying its subtotal."""
    return OrderLineItem(
        order=order,
        description=IMPORTED_LINE_ITEM,
        quantity=1,
        unit_price=order.subtotal,
        line_total=order.subtotal,
    )
