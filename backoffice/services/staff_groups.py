"""Staff groups: which permissions the front desk and finance roles get."""

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

FRONT_DESK = "Front desk"
FINANCE = "Finance"

# Group name -> "app_label.codename" permissions. Re-running only adds what is missing.
STAFF_GROUPS: dict[str, tuple[str, ...]] = {
    FRONT_DESK: (
        "backoffice.view_order",
        "backoffice.record_manual_payment",
        "backoffice.mark_comp",
        "backoffice.cancel_order",
        "backoffice.send_payment_link",
    ),
    FINANCE: (
        "backoffice.view_order",
        "backoffice.view_payment",
        "backoffice.export_order",
        "backoffice.export_payment",
        "backoffice.import_order",
        "backoffice.view_refund",
        "backoffice.refund_payment",
        "backoffice.view_dispute",
        "backoffice.cancel_order",
        "backoffice.sync_stripe",
        "backoffice.send_payment_link",
    ),
}


@dataclass(frozen=True)
class GroupResult:
    """What ``create_staff_groups`` did to one group."""

    name: str
    created: bool
    added: int
    total: int


def _permissions(names: tuple[str, ...]) -> list[Permission]:
    """Look up 'app_label.codename' permissions; raise when one does not exist (yet)."""
    found = []
    missing = []
    for name in names:
        app_label, codename = name.split(".", 1)
        permission = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is None:
            missing.append(name)
        else:
            found.append(permission)
    if missing:
        raise ImproperlyConfigured(
            f"Missing permissions {', '.join(missing)}: run 'manage.py migrate' first."
        )
    return found


def create_staff_groups() -> list[GroupResult]:
    """Create the staff groups and give them their permissions; safe to run again."""
    results = []
    with transaction.atomic():
        for name, permission_names in STAFF_GROUPS.items():
            group, created = Group.objects.get_or_create(name=name)
            wanted = _permissions(permission_names)
            have = set(group.permissions.values_list("pk", flat=True))
            to_add = [p for p in wanted if p.pk not in have]
            group.permissions.add(*to_add)
            results.append(
                GroupResult(name=name, created=created, added=len(to_add), total=len(wanted))
            )
    return results
