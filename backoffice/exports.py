"""import-export Resources for payments and orders, and spreadsheet-safe cell rendering.

Every export path (the admin's in-memory CSV/XLSX, the streaming CSV, the
``export_payments`` command) renders cells through the field types defined
here, so a column looks the same whichever path produced it:

- CSV text cells that a spreadsheet would run as a formula are escaped with a
  leading single quote (``escape_formula`` in Python, ``EscapeFormula`` in SQL,
  both built from ``FORMULA_TRIGGERS``); XLSX keeps the text as it is, in a
  text cell (``spreadsheet.TextCellXLSX``, ``keep_as_text``);
- amounts are plain numbers with the currency's decimal places;
- datetimes are ISO 8601 in the site's time zone with the UTC offset (real,
  zone-less local datetimes in XLSX, with the zone named in its own column).

Each field also carries the SQL expression of its cell, which the streaming
export runs inside PostgreSQL's ``COPY (…) TO STDOUT``.
"""

import copy
import datetime
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import tablib
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Concat, NullIf, Round, Trim
from django.utils import timezone
from import_export import resources, widgets
from import_export.fields import Field
from import_export.results import Result, RowResult

from backoffice.ledger_rows import payments_and_refunds_select, payments_with_refunds
from backoffice.models import (
    STRIPE_ACTOR,
    Conference,
    Dispute,
    Order,
    Payment,
    Refund,
    user_name,
)
from backoffice.money import ZERO_DECIMAL_CURRENCIES, quantum
from backoffice.services import order_import
from backoffice.spreadsheet import FORMULA_TRIGGERS, escape_formula, xlsx_text


class EscapeFormula(models.Func):
    """SQL twin of ``escape_formula``: the text prefixed with a quote when it starts a formula.

    PostgreSQL only (the streaming export's ``COPY`` path).
    """

    output_field = models.TextField()

    def as_sql(self, compiler, connection, **extra_context):  # noqa: ANN001, ANN201
        """Compile to ``CASE WHEN ascii(x) IN (codes) THEN quote || x ELSE x END``.

        ``ascii`` (the first character's code point; 0 for '', NULL for NULL)
        compares integers, which costs far less per row than comparing text.
        """
        inner_sql, inner_params = compiler.compile(self.source_expressions[0])
        codes = ", ".join(str(ord(char)) for char in FORMULA_TRIGGERS)
        sql = (
            f"CASE WHEN ascii({inner_sql}) IN ({codes}) "
            f"THEN '''' || {inner_sql} ELSE {inner_sql} END"
        )
        return sql, (*inner_params, *inner_params, *inner_params)


# An import preview shows (and builds the diff of) this many rows; the rest are counted.
PREVIEW_ROWS = 100


def site_time_zone_name() -> str:
    """The site's time zone (``settings.TIME_ZONE``), named in every export."""
    return settings.TIME_ZONE


def local_datetime(value: datetime.datetime) -> datetime.datetime:
    """The datetime in the site's time zone, to the second."""
    return timezone.localtime(value, timezone.get_default_timezone()).replace(microsecond=0)


def amount_for_export(amount: Decimal, currency: str) -> Decimal:
    """The amount with the currency's decimal places (two, or none for JPY and the like)."""
    return amount.quantize(quantum(currency))


class Kind:
    """How a column's cells are rendered."""

    TEXT = "text"  # free text: formula-escaped, empty when missing
    LABEL = "label"  # a choices value shown with its label (fixed vocabulary, not escaped)
    INTEGER = "integer"
    AMOUNT = "amount"  # Decimal in the currency's minor unit
    DATETIME = "datetime"  # ISO 8601 with offset; naive local datetime in XLSX


class ExportField(Field):
    """A column rendered the same way by Python (library path) and SQL (streaming path).

    ``source`` is the value's ``__`` path on the exported instance (or a callable
    taking the instance, or None for a column empty on such rows); ``sql`` is the
    matching ORM expression, or a callable building it at export time (defaults
    to ``F(source)``); ``currency`` is the path of the currency for amounts.

    A column of a ledger that also lists refunds (the payments export) says with
    ``refund_source`` (and ``refund_sql``, ``refund_currency``, ``refund_choices``)
    what the cell holds on a refund's row; without it the cell is empty there.
    A lost dispute's row (money out like a refund) is declared the same way with
    ``dispute_*``; a refund cell read from the payment (a ``payment__`` path) is
    the dispute's cell too unless ``dispute_source`` says otherwise.
    """

    def __init__(
        self,
        column_name: str,
        *,
        kind: str,
        source: str | Callable[[Any], Any] | None,
        sql: Any = None,
        currency: str | None = None,
        choices: Any = None,
        attribute: str | None = None,
        widget: widgets.Widget | None = None,
        readonly: bool = True,
        refund_source: str | Callable[[Any], Any] | None = None,
        refund_sql: Any = None,
        refund_currency: str | None = None,
        refund_choices: Any = None,
        dispute_source: str | Callable[[Any], Any] | None = None,
        dispute_sql: Any = None,
        dispute_currency: str | None = None,
        dispute_choices: Any = None,
    ) -> None:
        super().__init__(
            attribute=attribute,
            column_name=column_name,
            widget=widget,
            readonly=readonly,
        )
        self.kind = kind
        self.source = source
        self.currency_path = currency
        self.labels = dict(choices) if choices is not None else None
        if sql is None and isinstance(source, str):
            sql = F(source)
        self.sql = sql
        self.refund_cell = (
            None
            if refund_source is None
            else ExportField(
                column_name,
                kind=kind,
                source=refund_source,
                sql=refund_sql,
                currency=refund_currency,
                choices=choices if refund_choices is None else refund_choices,
            )
        )
        from_payment = isinstance(refund_source, str) and refund_source.startswith("payment__")
        if dispute_source is None and from_payment:
            dispute_source, dispute_sql = refund_source, refund_sql
            dispute_currency = dispute_currency or refund_currency
        self.dispute_cell = (
            None
            if dispute_source is None
            else ExportField(
                column_name,
                kind=kind,
                source=dispute_source,
                sql=dispute_sql,
                currency=dispute_currency,
                choices=choices if dispute_choices is None else dispute_choices,
            )
        )

    @staticmethod
    def _follow(instance: Any, path: str) -> Any:
        """Follow a ``__`` path through related objects; None when a link is missing."""
        value = instance
        for part in path.split("__"):
            value = getattr(value, part, None)
            if value is None:
                return None
        return value

    def raw_value(self, instance: Any) -> Any:
        """The cell's value before rendering."""
        if self.source is None:
            return None
        if callable(self.source):
            return self.source(instance)
        return self._follow(instance, self.source)

    def render_cell(self, instance: Any, *, native: bool) -> Any:
        """The cell as the file holds it: str for CSV, native types for XLSX when ``native``."""
        if isinstance(instance, Refund | Dispute):
            cell = self.refund_cell if isinstance(instance, Refund) else self.dispute_cell
            if cell is None:
                return None if native else ""
            return cell.render_value(instance, native=native)
        return self.render_value(instance, native=native)

    def render_value(self, instance: Any, *, native: bool) -> Any:
        """The cell of ``source`` on this instance, rendered by the column's kind."""
        value = self.raw_value(instance)
        if self.kind == Kind.TEXT:
            text = "" if value is None else str(value)
            # XLSX stores it as a text cell (spreadsheet.keep_as_text): no quote needed.
            return xlsx_text(text) if native else escape_formula(text)
        if self.kind == Kind.LABEL:
            return "" if value is None else str(self.labels.get(value, value))
        if value is None:
            return None if native else ""
        if self.kind == Kind.INTEGER:
            return value if native else str(value)
        if self.kind == Kind.AMOUNT:
            amount = amount_for_export(value, self._follow(instance, self.currency_path))
            return amount if native else str(amount)
        if self.kind == Kind.DATETIME:
            local = local_datetime(value)
            return local.replace(tzinfo=None) if native else local.isoformat()
        raise ValueError(f"Unknown column kind {self.kind!r}")

    def refund_sql_expression(self) -> Any:
        """The ORM expression of this cell on a refund's row (a Refund queryset)."""
        if self.refund_cell is None:
            return Value(None, output_field=models.TextField())
        return self.refund_cell.sql_expression()

    def dispute_sql_expression(self) -> Any:
        """The ORM expression of this cell on a lost dispute's row (a Dispute queryset)."""
        if self.dispute_cell is None:
            return Value(None, output_field=models.TextField())
        return self.dispute_cell.sql_expression()

    def sql_expression(self) -> Any:
        """The ORM expression giving this cell's text in ``COPY … CSV`` (PostgreSQL)."""
        if self.source is None:
            return Value(None, output_field=models.TextField())
        sql = self.sql() if callable(self.sql) else self.sql
        if self.kind == Kind.TEXT:
            # NULL, not '', so COPY writes an unquoted empty cell like csv.writer does.
            return NullIf(EscapeFormula(sql), Value(""), output_field=models.TextField())
        if self.kind == Kind.LABEL:
            # NULL for a blank choice (an empty channel), written unquoted like csv.writer.
            return NullIf(
                Case(
                    *(When(**{self.source: key}, then=Value(str(label))) for key, label in
                      self.labels.items()),
                    default=F(self.source),
                    output_field=models.TextField(),
                ),
                Value(""),
                output_field=models.TextField(),
            )  # fmt: skip
        if self.kind == Kind.INTEGER:
            return sql
        if self.kind == Kind.AMOUNT:
            # Compare the (few) conference ids rather than every row's currency text.
            conference_path = self.currency_path.rsplit("__", 1)[0]
            zero_decimal = list(
                Conference.objects.filter(currency__in=ZERO_DECIMAL_CURRENCIES)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            if not zero_decimal:
                return sql
            return Case(
                When(**{f"{conference_path}__in": zero_decimal}, then=Round(sql, 0)),
                default=sql,
                output_field=models.DecimalField(),
            )
        if self.kind == Kind.DATETIME:
            # The streaming export sets the session TimeZone to the site's for this.
            return models.Func(
                sql,
                Value('YYYY-MM-DD"T"HH24:MI:SSTZH:TZM'),
                function="to_char",
                output_field=models.TextField(),
            )
        raise ValueError(f"Unknown column kind {self.kind!r}")


def attendee_name(order: Order) -> str:
    """The order's billing name, else its account named as people are (``user_name``)."""
    return order.billing_name or user_name(order.user)


def attendee_name_sql(prefix: str) -> Any:
    """SQL twin of ``attendee_name`` for the order at ``prefix`` ('' for orders)."""
    return Coalesce(
        NullIf(F(f"{prefix}billing_name"), Value("")),
        user_name_sql(f"{prefix}user__"),
        output_field=models.TextField(),
    )


def attendee_email(order: Order) -> str:
    """The order's billing email, else the attendee's account email."""
    return order.billing_email or order.user.email


def attendee_email_sql(prefix: str) -> Any:
    """SQL twin of ``attendee_email``."""
    return Coalesce(
        NullIf(F(f"{prefix}billing_email"), Value("")),
        F(f"{prefix}user__email"),
        output_field=models.TextField(),
    )


def user_name_sql(prefix: str) -> Any:
    """SQL twin of ``models.user_name`` for the user at ``prefix`` (e.g. ``created_by__``).

    ``get_full_name`` is ``f"{first} {last}".strip()``; the username when that is empty.
    """
    full_name = Trim(
        Concat(
            F(f"{prefix}first_name"),
            Value(" "),
            F(f"{prefix}last_name"),
            output_field=models.TextField(),
        )
    )
    return Coalesce(
        NullIf(full_name, Value("")), F(f"{prefix}username"), output_field=models.TextField()
    )


def _recorded_by(row: Payment | Refund) -> str:
    """Who recorded the payment or refund, as the admin names them ('' when nobody is known)."""
    return row.recorded_by_name


def recorded_by_sql(stripe_made: Q) -> Case:
    """SQL twin of ``recorded_by_name``: the recorder's name, Stripe when ``stripe_made``, or ''."""
    return Case(
        When(created_by__isnull=False, then=user_name_sql("created_by__")),
        When(stripe_made, then=Value(STRIPE_ACTOR)),
        default=Value(""),
        output_field=models.TextField(),
    )


class LedgerResource(resources.ModelResource):
    """A Resource whose cells come from ``ExportField.render_cell`` on every path."""

    #: select_related paths every exported row needs (one query per chunk, not per row).
    export_select_related: tuple[str, ...] = ()

    def export_field(self, field: Field, instance: Any, **kwargs: Any) -> Any:
        """Render the cell through the field's kind (native types for XLSX)."""
        if isinstance(field, ExportField):
            return field.render_cell(instance, native=bool(kwargs.get("force_native_type")))
        return super().export_field(field, instance, **kwargs)

    def filter_export(self, queryset: models.QuerySet, **kwargs: Any) -> models.QuerySet:
        """Fetch the related rows the columns need with the exported rows."""
        return queryset.select_related(*self.export_select_related)

    def export_columns(self, selected_fields: list[str] | None = None) -> list[ExportField]:
        """The exported columns in order (all, or the ones picked in the export form)."""
        return list(self.get_export_fields(selected_fields))

    def prepare_export_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """The queryset as exported: related rows joined, amounts annotated."""
        return self.filter_export(queryset)

    def export_rows(self, queryset: models.QuerySet, chunk_rows: int) -> Iterator[Any]:
        """The exported rows in file order, read ``chunk_rows`` at a time."""
        return queryset.iterator(chunk_size=chunk_rows)

    def iter_queryset(self, queryset: Any) -> Iterator[Any]:
        """The library's export reads the rows the streaming export writes."""
        if not isinstance(queryset, models.QuerySet):
            return iter(queryset)
        return self.export_rows(queryset, self.get_chunk_size())

    def copy_select(
        self, queryset: models.QuerySet, columns: list[ExportField]
    ) -> tuple[str, tuple]:
        """The SELECT (SQL, params) whose rows are the CSV's, for ``COPY (…) TO STDOUT``."""
        expressions = {
            f"export_col_{index}": column.sql_expression() for index, column in enumerate(columns)
        }
        select = queryset.annotate(**expressions).values_list(*expressions)
        return select.query.sql_with_params()


class PaymentResource(LedgerResource):
    """The payments ledger as finance exports it: each payment, then its refunds.

    A refund is its own row (see ``backoffice.ledger_rows``): its payment's ID,
    order, attendee, method and references, its own date, status, note, channel,
    reason and recorder, and its amount negative. So is a lost dispute (money
    out like a refund): dated when it was lost, with the Status "Dispute lost",
    its Stripe id and reason. The Amount column of the rows whose Status is
    Succeeded, Refunded or Dispute lost sums to net collected.
    """

    export_select_related = ("order__conference", "order__user", "created_by")

    id = ExportField(
        "Payment ID",
        kind=Kind.INTEGER,
        source="id",
        refund_source="payment_id",
        dispute_source="payment_id",
    )
    created_at = ExportField(
        "Created at",
        kind=Kind.DATETIME,
        source="created_at",
        refund_source="created_at",
        dispute_source="closed_at",
    )
    time_zone = ExportField(
        "Time zone",
        kind=Kind.TEXT,
        source=lambda row: site_time_zone_name(),
        sql=lambda: Value(site_time_zone_name(), output_field=models.TextField()),
        refund_source=lambda row: site_time_zone_name(),
        refund_sql=lambda: Value(site_time_zone_name(), output_field=models.TextField()),
        dispute_source=lambda row: site_time_zone_name(),
        dispute_sql=lambda: Value(site_time_zone_name(), output_field=models.TextField()),
    )
    order_reference = ExportField(
        "Order reference",
        kind=Kind.TEXT,
        source="order__reference",
        refund_source="payment__order__reference",
    )
    conference = ExportField(
        "Conference",
        kind=Kind.TEXT,
        source="order__conference__name",
        refund_source="payment__order__conference__name",
    )
    attendee_name = ExportField(
        "Attendee name",
        kind=Kind.TEXT,
        source=lambda payment: attendee_name(payment.order),
        sql=attendee_name_sql("order__"),
        refund_source=lambda refund: attendee_name(refund.payment.order),
        refund_sql=attendee_name_sql("payment__order__"),
        dispute_source=lambda dispute: attendee_name(dispute.payment.order),
        dispute_sql=attendee_name_sql("payment__order__"),
    )
    attendee_email = ExportField(
        "Attendee email",
        kind=Kind.TEXT,
        source=lambda payment: attendee_email(payment.order),
        sql=attendee_email_sql("order__"),
        refund_source=lambda refund: attendee_email(refund.payment.order),
        refund_sql=attendee_email_sql("payment__order__"),
        dispute_source=lambda dispute: attendee_email(dispute.payment.order),
        dispute_sql=attendee_email_sql("payment__order__"),
    )
    method = ExportField(
        "Method",
        kind=Kind.LABEL,
        source="method",
        choices=Payment.Method.choices,
        refund_source="payment__method",
    )
    status = ExportField(
        "Status",
        kind=Kind.LABEL,
        source="status",
        choices=Payment.Status.choices,
        refund_source="status",
        refund_choices=Refund.Status.choices,
        dispute_source="status",
        dispute_choices=[(Dispute.Status.LOST, "Dispute lost")],
    )
    amount = ExportField(
        "Amount",
        kind=Kind.AMOUNT,
        source="amount",
        currency="order__conference__currency",
        refund_source=lambda refund: -refund.amount,
        refund_sql=-F("amount"),
        refund_currency="payment__order__conference__currency",
        dispute_source=lambda dispute: -dispute.amount,
        dispute_sql=-F("amount"),
        dispute_currency="payment__order__conference__currency",
    )
    currency = ExportField(
        "Currency",
        kind=Kind.TEXT,
        source="order__conference__currency",
        refund_source="payment__order__conference__currency",
    )
    reference = ExportField(
        "Reference", kind=Kind.TEXT, source="reference", refund_source="payment__reference"
    )
    note = ExportField("Note", kind=Kind.TEXT, source="note", refund_source="note")
    recorded_by = ExportField(
        "Recorded by",
        kind=Kind.TEXT,
        source=_recorded_by,
        sql=recorded_by_sql(Q(method=Payment.Method.STRIPE)),
        refund_source=_recorded_by,
        refund_sql=recorded_by_sql(~Q(stripe_refund_id="")),
    )
    stripe_payment_intent_id = ExportField(
        "Stripe payment intent ID",
        kind=Kind.TEXT,
        source="stripe_payment_intent_id",
        refund_source="payment__stripe_payment_intent_id",
    )
    stripe_charge_id = ExportField(
        "Stripe charge ID",
        kind=Kind.TEXT,
        source="stripe_charge_id",
        refund_source="payment__stripe_charge_id",
    )
    channel = ExportField(
        "Channel",
        kind=Kind.LABEL,
        source="channel",
        choices=Payment.Channel.choices,
        refund_source="channel",
    )
    refund_id = ExportField("Refund ID", kind=Kind.INTEGER, source=None, refund_source="id")
    refund_reason = ExportField(
        "Refund reason",
        kind=Kind.LABEL,
        source=None,
        refund_source="reason",
        refund_choices=Refund.Reason.choices,
    )
    stripe_refund_id = ExportField(
        "Stripe refund ID", kind=Kind.TEXT, source=None, refund_source="stripe_refund_id"
    )
    stripe_dispute_id = ExportField(
        "Stripe dispute ID", kind=Kind.TEXT, source=None, dispute_source="stripe_dispute_id"
    )
    dispute_reason = ExportField(
        "Dispute reason", kind=Kind.TEXT, source=None, dispute_source="reason"
    )

    class Meta:
        model = Payment
        # The first sixteen columns keep their places from before refunds were
        # itemised (issue 10); the new ones come after them.
        fields = (
            "id",
            "created_at",
            "time_zone",
            "order_reference",
            "conference",
            "attendee_name",
            "attendee_email",
            "method",
            "status",
            "amount",
            "currency",
            "reference",
            "note",
            "recorded_by",
            "stripe_payment_intent_id",
            "stripe_charge_id",
            "channel",
            "refund_id",
            "refund_reason",
            "stripe_refund_id",
            "stripe_dispute_id",
            "dispute_reason",
        )
        export_order = fields
        import_id_fields = ()

    @classmethod
    def get_display_name(cls) -> str:
        """Name shown in the export form."""
        return "Payments ledger"

    def export_rows(self, queryset: models.QuerySet, chunk_rows: int) -> Iterator[Any]:
        """Each payment followed by its refunds."""
        return payments_with_refunds(queryset, chunk_rows)

    def copy_select(
        self, queryset: models.QuerySet, columns: list[ExportField]
    ) -> tuple[str, tuple]:
        """Payments and their refunds in one SELECT, in ``export_rows``' order."""
        return payments_and_refunds_select(queryset, columns)


class OrderResource(LedgerResource):
    """Orders as finance exports them, and as organisers import them from other systems.

    Import creates new PENDING (or CANCELLED) orders only: references are
    generated, the attendee is found or created by email, and paid/balance
    columns are ignored (money arrives through payments, not through a file).
    The cells are read by ``services.order_import`` (one sentence per refusal);
    orders are saved in batches (``use_bulk``), and a dry run (the preview)
    checks every row but writes nothing. Only the first ``PREVIEW_ROWS`` rows
    carry a preview diff: nobody reads the ten-thousandth, and building it
    costs as much as checking the row.
    """

    export_select_related = ("conference", "user")

    reference = ExportField("Reference", kind=Kind.TEXT, source="reference")
    conference = ExportField(
        "Conference",
        kind=Kind.TEXT,
        source="conference__name",
        attribute="conference",
        readonly=False,
    )
    attendee = ExportField(
        "Attendee",
        kind=Kind.TEXT,
        source=attendee_name,
        sql=attendee_name_sql(""),
        attribute="billing_name",
        readonly=False,
    )
    email = ExportField(
        "Email",
        kind=Kind.TEXT,
        source=attendee_email,
        sql=attendee_email_sql(""),
        attribute="billing_email",
        readonly=False,
    )
    status = ExportField(
        "Status",
        kind=Kind.LABEL,
        source="status",
        choices=Order.Status.choices,
        attribute="status",
        readonly=False,
    )
    subtotal = ExportField(
        "Subtotal",
        kind=Kind.AMOUNT,
        source="subtotal",
        currency="conference__currency",
        attribute="subtotal",
        readonly=False,
    )
    discount = ExportField(
        "Discount",
        kind=Kind.AMOUNT,
        source="discount_amount",
        currency="conference__currency",
        attribute="discount_amount",
        readonly=False,
    )
    total = ExportField(
        "Total",
        kind=Kind.AMOUNT,
        source="total",
        currency="conference__currency",
        attribute="total",
        readonly=False,
    )
    paid = ExportField("Paid", kind=Kind.AMOUNT, source="paid_sum", currency="conference__currency")
    balance_due = ExportField(
        "Balance due",
        kind=Kind.AMOUNT,
        source="balance_due",
        sql=models.Func(
            F("balance_sum"),
            Value(Decimal("0.00")),
            function="GREATEST",
            output_field=models.DecimalField(),
        ),
        currency="conference__currency",
    )
    created_at = ExportField("Created at", kind=Kind.DATETIME, source="created_at")

    class Meta:
        model = Order
        fields = (
            "reference",
            "conference",
            "attendee",
            "email",
            "status",
            "subtotal",
            "discount",
            "total",
            "paid",
            "balance_due",
            "created_at",
        )
        export_order = fields
        import_id_fields = ()
        clean_model_instances = False  # the service checks every cell (no query per row)
        force_init_instance = True  # import creates orders; it never updates existing ones
        skip_unchanged = False
        use_transactions = True
        use_bulk = True
        batch_size = 1000

    @classmethod
    def get_display_name(cls) -> str:
        """Name shown in the import/export forms."""
        return "Orders"

    def filter_export(self, queryset: models.QuerySet, **kwargs: Any) -> models.QuerySet:
        """Join conference and attendee, and annotate paid amounts unless the list did."""
        queryset = super().filter_export(queryset, **kwargs)
        if "paid_sum" not in queryset.query.annotations:
            queryset = queryset.with_amounts()
        return queryset

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._meta = copy.copy(self._meta)  # import_row switches skip_diff for this resource only

    def import_data(self, dataset: tablib.Dataset, **kwargs: Any) -> Result:
        """Import all rows or none: a file missing a column, or any invalid row, writes nothing."""
        kwargs["rollback_on_validation_errors"] = True
        headers = order_import.canonical_headers(dataset.headers or [])
        try:
            order_import.check_columns(headers)
        except ValidationError as exc:
            result = self.get_result_class()()
            result.total_rows = len(dataset)
            result.append_base_error(self.get_error_result_class()(ValueError(*exc.messages)))
            return result
        dataset.headers = headers
        return super().import_data(dataset, **kwargs)

    def before_import(self, dataset: tablib.Dataset, **kwargs: Any) -> None:
        """Read the conferences and look up the file's attendees, once for all rows."""
        self.order_import = order_import.OrderImport()
        self.order_import.prefetch_attendees(dataset[order_import.EMAIL])

    def get_instance(self, instance_loader: Any, row: Any) -> None:
        """Never match an existing order: an import only creates."""
        return None

    def import_row(self, row: Any, instance_loader: Any, **kwargs: Any) -> RowResult:
        """Import one row, building its preview diff only for the first ``PREVIEW_ROWS``."""
        self._meta.skip_diff = kwargs["row_number"] > PREVIEW_ROWS
        return super().import_row(row, instance_loader, **kwargs)

    def import_instance(self, instance: Order, row: Any, **kwargs: Any) -> None:
        """Fill the order from the row's cells (refused with one sentence per bad cell)."""
        self.order_import.fill_order(instance, row, row_number=kwargs["row_number"])

    def bulk_create(
        self,
        using_transactions: bool,
        dry_run: bool,
        raise_errors: bool,
        batch_size: int | None = None,
        result: Result | None = None,
    ) -> None:
        """Save a batch of orders with their new attendees and line items; nothing in a dry run."""
        try:
            if not dry_run:
                self.order_import.save_orders(self.create_instances)
        except DatabaseError as exc:  # e.g. a conference deleted since the preview
            self.handle_import_error(result, exc, raise_errors)
        finally:
            self.create_instances.clear()
