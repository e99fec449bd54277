"""Demo data: one conference, a few dozen attendees and orders in every state, demo staff.

Payments go through ``PaymentService`` like real ones; only the timestamps are
moved into the past afterwards so the lists look lived-in.
"""

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone

from backoffice.models import ZERO, Conference, Order, OrderLineItem, Payment
from backoffice.services.ledger_totals_check import repair_totals
from backoffice.services.payment import PaymentService
from backoffice.services.staff_groups import FINANCE, FRONT_DESK, create_staff_groups

DEMO_CONFERENCE = {
    "name": "PyCon Demo 2026",
    "slug": "pycon-demo-2026",
    "currency": "USD",
    # Named on e-mails and on the "payment link no longer valid" page.
    "contact_email": "registration@pycon-demo.example",
}

# (username, password, role, full name) of the demo accounts; the passwords are public (README).
DEMO_ACCOUNTS = (
    ("admin", "demo-admin-pass", "superuser", ("Avery", "Admin")),
    ("desk", "demo-desk-pass", FRONT_DESK, ("Dana", "Desk")),
    ("finance", "demo-finance-pass", FINANCE, ("Frankie", "Finance")),
)

TICKETS = (
    ("Conference ticket — Individual", Decimal("350.00")),
    ("Conference ticket — Corporate", Decimal("650.00")),
    ("Conference ticket — Student", Decimal("120.00")),
)
EXTRAS = (
    ("Tutorial: Async Django in practice", Decimal("150.00")),
    ("Tutorial: Testing with pytest", Decimal("150.00")),
    ("Conference T-shirt", Decimal("25.00")),
    ("Social event", Decimal("40.00")),
)
FREE_PASSES = ("Speaker pass", "Volunteer pass", "Sponsor pass (included)")

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Katherine", "Guido", "Barbara", "Linus", "Margaret",
    "Dennis", "Frances", "Ken", "Radia", "Tim", "Hedy", "Donald", "Joan",
    "Edsger", "Sophie", "John", "Anita", "Bjarne", "Carol", "Niklaus", "Mary",
    "Leslie", "Shafi", "Yukihiro", "Adele", "Brian", "Lynn", "James", "Jean",
    "Larry", "Karen", "Rasmus", "Evelyn",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Johnson", "van Rossum", "Liskov", "Torvalds",
    "Hamilton", "Ritchie", "Allen", "Thompson", "Perlman", "Berners-Lee", "Lamarr",
    "Knuth", "Clarke", "Dijkstra", "Wilson", "McCarthy", "Borg", "Stroustrup",
    "Shaw", "Wirth", "Keller", "Lamport", "Goldwasser", "Matsumoto", "Goldberg",
    "Kernighan", "Conway", "Gosling", "Sammet", "Wall", "Spärck Jones", "Lerdorf",
    "Boyd",
)  # fmt: skip

# How many orders of each kind the demo gets.
PLAN = {
    "comp_pending": 6,  # zero total, waiting for "Mark comp"
    "unpaid": 6,  # nothing paid yet, hold still active
    "hold_expired": 3,  # nothing paid and the hold has passed: to cancel
    "partial": 6,  # part paid at the desk
    "paid_manual": 8,  # paid in full at the desk (some in two instalments)
    "paid_comp": 3,  # already comped
    "cancelled": 4,  # cancelled at the desk
}
CANCEL_REASONS = (
    "Attendee cannot travel.",
    "Duplicate registration.",
    "Hold expired; no reply to reminders.",
)


@dataclass
class DemoResult:
    """What the demo seed created."""

    conference: Conference
    orders_by_status: dict[str, int] = field(default_factory=dict)
    attendees: int = 0
    accounts: list[tuple[str, str, str, bool]] = field(default_factory=list)


def _demo_accounts(passwords: dict[str, str]) -> tuple[list, AbstractBaseUser]:
    """Create the superuser and the desk/finance users (kept as they are if they exist)."""
    user_model = get_user_model()
    groups = {group.name: group for group in Group.objects.all()}
    accounts = []
    desk_user = None
    for username, default_password, role, (first_name, last_name) in DEMO_ACCOUNTS:
        password = passwords.get(username, default_password)
        user = user_model.objects.filter(username=username).first()
        created = user is None
        if created:
            if role == "superuser":
                user = user_model.objects.create_superuser(
                    username,
                    f"{username}@example.com",
                    password,
                    first_name=first_name,
                    last_name=last_name,
                )
            else:
                user = user_model.objects.create_user(
                    username,
                    f"{username}@example.com",
                    password,
                    is_staff=True,
                    first_name=first_name,
                    last_name=last_name,
                )
                user.groups.add(groups[role])
        accounts.append((username, password if created else "(unchanged)", role, created))
        if username == "desk":
            desk_user = user
    return accounts, desk_user


def _line_items(rng: random.Random, kind: str) -> list[tuple[str, int, Decimal]]:
    """Pick what an order of this kind bought: (description, quantity, unit price)."""
    if kind in ("comp_pending", "paid_comp"):
        return [(rng.choice(FREE_PASSES), 1, ZERO)]
    description, price = rng.choice(TICKETS)
    items = [(description, 1, price)]
    for extra, extra_price in rng.sample(EXTRAS, k=rng.randint(0, 2)):
        quantity = 2 if extra == "Conference T-shirt" and rng.random() < 0.3 else 1
        items.append((extra, quantity, extra_price))
    return items


def _create_order(
    rng: random.Random,
    conference: Conference,
    attendee: AbstractBaseUser,
    kind: str,
    created_at: datetime,
    now: datetime,
) -> Order:
    """Create one pending order with its line items; unpaid ones get a hold (some expired)."""
    items = _line_items(rng, kind)
    subtotal = sum((quantity * price for _, quantity, price in items), ZERO)
    discount = ZERO
    if subtotal and rng.random() < 0.25:
        discount = (subtotal * Decimal("0.10")).quantize(Decimal("0.01"))  # early-bird voucher
    order = Order.objects.create(
        conference=conference,
        user=attendee,
        subtotal=subtotal,
        discount_amount=discount,
        total=subtotal - discount,
        billing_name=attendee.get_full_name(),
        billing_email=attendee.email,
        hold_expires_at=_hold(rng, kind, now),
    )
    OrderLineItem.objects.bulk_create(
        OrderLineItem(
            order=order,
            description=description,
            quantity=quantity,
            unit_price=price,
            line_total=quantity * price,
        )
        for description, quantity, price in items
    )
    Order.objects.filter(pk=order.pk).update(created_at=created_at, updated_at=created_at)
    return order


def _hold(rng: random.Random, kind: str, now: datetime) -> datetime | None:
    """When an unpaid order's hold ends: ahead for "unpaid", passed for "hold_expired"."""
    if kind == "unpaid":
        return now + timedelta(days=rng.randint(1, 14), hours=rng.randint(0, 23))
    if kind == "hold_expired":
        return now - timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 23))
    return None


def _pay(rng: random.Random, order: Order, kind: str, staff: AbstractBaseUser) -> None:
    """Record the order's payments (or its cancellation) through the payment service."""
    if kind == "cancelled":
        PaymentService.cancel_order(order, reason=rng.choice(CANCEL_REASONS), staff_user=staff)
    elif kind == "paid_comp":
        PaymentService.record_comp(order, staff_user=staff)
    elif kind == "partial":
        share = Decimal(rng.choice(("0.25", "0.40", "0.50")))
        amount = (order.total * share).quantize(Decimal("0.01"))
        PaymentService.record_manual(
            order,
            amount=amount,
            channel=Payment.Channel.CARD_TERMINAL,
            reference=f"TERM-{rng.randint(1000, 9999)}",
            note="Deposit taken on the card terminal at the registration desk.",
            staff_user=staff,
        )
    elif kind == "paid_manual":
        if rng.random() < 0.4:
            first = (order.total / 2).quantize(Decimal("0.01"))
            PaymentService.record_manual(
                order,
                amount=first,
                channel=Payment.Channel.BANK_TRANSFER,
                reference=f"WIRE-{rng.randint(10000, 99999)}",
                staff_user=staff,
            )
            PaymentService.record_manual(
                order,
                amount=order.total - first,
                channel=Payment.Channel.BANK_TRANSFER,
                reference=f"WIRE-{rng.randint(10000, 99999)}",
                note="Second instalment.",
                staff_user=staff,
            )
        else:
            PaymentService.record_manual(
                order,
                amount=order.total,
                channel=Payment.Channel.CASH,
                reference=f"CASH-{rng.randint(1000, 9999)}",
                note="Paid in cash at the door.",
                staff_user=staff,
            )


def seed_demo_data(*, passwords: dict[str, str] | None = None, seed: int = 2026) -> DemoResult:
    """Fill an empty database with the demo conference, attendees, orders and staff accounts."""
    rng = random.Random(seed)
    now = timezone.now()
    with transaction.atomic():
        create_staff_groups()
        accounts, desk_user = _demo_accounts(passwords or {})
        conference = Conference.objects.create(**DEMO_CONFERENCE)
        result = DemoResult(conference=conference, accounts=accounts)

        user_model = get_user_model()
        kinds = [kind for kind, count in PLAN.items() for _ in range(count)]
        rng.shuffle(kinds)
        for index, kind in enumerate(kinds):
            first = FIRST_NAMES[index % len(FIRST_NAMES)]
            last = LAST_NAMES[index % len(LAST_NAMES)]
            username = f"{first}.{last}".lower().replace(" ", "").replace("ä", "a")
            attendee = user_model.objects.create_user(
                username=username,
                email=f"{username}@example.com",
                first_name=first,
                last_name=last,
            )  # no password: attendees do not log in to the back office
            created_at = now - timedelta(days=rng.randint(1, 60), minutes=rng.randint(0, 1439))
            order = _create_order(rng, conference, attendee, kind, created_at, now)
            _pay(rng, order, kind, desk_user)
            paid_at = min(created_at + timedelta(days=rng.randint(0, 5)), now)
            Payment.objects.filter(order=order).update(created_at=paid_at, updated_at=paid_at)
        # The payments were backdated after they were counted: count them on their days.
        repair_totals()
        result.attendees = len(kinds)
        for status in Order.Status:
            result.orders_by_status[status.label] = Order.objects.filter(status=status).count()
    return result


def order_to_pay() -> Order | None:
    """A pending demo order with a balance due and its hold still running, newest first."""
    now = timezone.now()
    return (
        Order.objects.with_amounts()
        .filter(
            conference__slug=DEMO_CONFERENCE["slug"],
            status=Order.Status.PENDING,
            balance_sum__gt=ZERO,
        )
        .exclude(hold_expires_at__lte=now)
        .select_related("conference")
        .order_by("-created_at", "-pk")
        .first()
    )


def demo_logins() -> list[tuple[str, str, str]]:
    """(username, password, role) of the demo accounts that still have their published password."""
    users = {u.username: u for u in get_user_model().objects.filter(
        username__in=[username for username, *_ in DEMO_ACCOUNTS]
    )}  # fmt: skip
    return [
        (username, password, role)
        for username, password, role, _ in DEMO_ACCOUNTS
        if username in users and users[username].check_password(password)
    ]


def database_is_empty() -> bool:
    """Whether there is no conference and no order yet (the demo only fills such a database)."""
    return not Conference.objects.exists() and not Order.objects.exists()
