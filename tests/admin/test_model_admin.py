"""The admin's base class: list and order pages build their action choices without deprecations."""

import warnings

import pytest
from django.contrib import admin
from django.contrib.admin.options import ActionLocation
from django.test import RequestFactory
from django.urls import reverse
from django.utils.deprecation import RemovedInDjango2028Warning
from unfold import admin as unfold_admin

from backoffice.admin.model_admin import ModelAdmin

pytestmark = pytest.mark.django_db


def test_every_unfold_admin_builds_on_the_base_class():
    unfold_only = [
        type(model_admin).__name__
        for model_admin in admin.site._registry.values()
        if isinstance(model_admin, unfold_admin.ModelAdmin)
        and not isinstance(model_admin, ModelAdmin)
    ]

    assert unfold_only == []


def test_action_choices_keep_the_placeholder_and_follow_the_location(admin_user):
    request = RequestFactory().get("/")
    request.user = admin_user
    order_admin = next(m for m in admin.site._registry.values() if m.opts.model_name == "order")

    on_list = order_admin.get_action_choices(request, action_location=ActionLocation.CHANGE_LIST)
    on_form = order_admin.get_action_choices(request, action_location=ActionLocation.CHANGE_FORM)

    assert on_list[0] == ("", "Select action")
    assert "record_manual_selected" in [name for name, _label in on_list]
    assert on_form == [("", "Select action")]  # the order's list actions are not form actions


def test_the_orders_list_and_an_order_page_show_no_deprecation(admin_client, make_order):
    order = make_order("100.00")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listed = admin_client.get(reverse("admin:backoffice_order_changelist"))
        shown = admin_client.get(reverse("admin:backoffice_order_change", args=[order.pk]))

    assert (listed.status_code, shown.status_code) == (200, 200)
    assert [str(w.message) for w in caught if w.category is RemovedInDjango2028Warning] == []
