"""create_staff_groups: the Front desk and Finance groups."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def perms(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_creates_front_desk_and_finance_groups_with_their_permissions():
    out = StringIO()
    call_command("create_staff_groups", stdout=out)

    assert perms("Front desk") == {
        "backoffice.view_order",
        "backoffice.record_manual_payment",
        "backoffice.mark_comp",
        "backoffice.cancel_order",
        "backoffice.send_payment_link",
    }
    assert perms("Finance") == {
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
    }
    assert 'Group "Front desk" created' in out.getvalue()


def test_running_twice_changes_nothing_and_keeps_extra_permissions():
    call_command("create_staff_groups", stdout=StringIO())
    extra = Permission.objects.get(codename="view_conference")
    Group.objects.get(name="Finance").permissions.add(extra)

    out = StringIO()
    call_command("create_staff_groups", stdout=out)

    assert Group.objects.filter(name__in=["Front desk", "Finance"]).count() == 2
    assert Group.objects.count() == 2
    assert "backoffice.view_conference" in perms("Finance")
    assert "(0 added)" in out.getvalue()


def test_group_members_get_exactly_the_desk_powers(django_user_model):
    call_command("create_staff_groups", stdout=StringIO())
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.groups.add(Group.objects.get(name="Front desk"))
    clerk = django_user_model.objects.get(pk=clerk.pk)  # fresh permission cache

    assert clerk.has_perm("backoffice.record_manual_payment")
    assert clerk.has_perm("backoffice.mark_comp")
    assert clerk.has_perm("backoffice.view_order")
    assert not clerk.has_perm("backoffice.change_order")
    assert clerk.has_perm("backoffice.cancel_order")
    assert clerk.has_perm("backoffice.send_payment_link")
    assert not clerk.has_perm("backoffice.export_payment")
    # Money goes back only through Finance (issue 10).
    assert not clerk.has_perm("backoffice.refund_payment")
    assert not clerk.has_perm("backoffice.view_refund")
    assert not clerk.has_perm("backoffice.sync_stripe")


def test_finance_members_may_refund_cancel_re_sync_and_see_refunds(django_user_model):
    call_command("create_staff_groups", stdout=StringIO())
    accountant = django_user_model.objects.create_user("accountant", is_staff=True)
    accountant.groups.add(Group.objects.get(name="Finance"))
    accountant = django_user_model.objects.get(pk=accountant.pk)

    assert accountant.has_perm("backoffice.refund_payment")
    assert accountant.has_perm("backoffice.cancel_order")
    assert accountant.has_perm("backoffice.view_refund")
    assert accountant.has_perm("backoffice.sync_stripe")
    assert accountant.has_perm("backoffice.send_payment_link")
    assert not accountant.has_perm("backoffice.change_refund")
