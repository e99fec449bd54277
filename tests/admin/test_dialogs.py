"""Dialog responses shared by the admin's dialog actions."""

from django import forms
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from backoffice.admin.dialogs import add_service_error, close_dialog, render_dialog


class AmountForm(forms.Form):
    amount = forms.DecimalField()


def test_close_dialog_answers_htmx_with_hx_redirect_and_others_with_302():
    factory = RequestFactory()
    htmx = close_dialog(factory.post("/x/", headers={"HX-Request": "true"}), "/admin/done/")
    plain = close_dialog(factory.post("/x/"), "/admin/done/")
    assert (htmx.status_code, htmx["HX-Redirect"]) == (200, "/admin/done/")
    assert (plain.status_code, plain["Location"]) == (302, "/admin/done/")


def test_render_dialog_shows_the_form_error_and_the_submit_text(db):
    request = RequestFactory().post("/x/")
    form = AmountForm(data={"amount": "1"})
    assert form.is_valid()
    form.add_error("amount", "The amount 1.00 USD is more than the balance due.")
    response = render_dialog(
        request, {"title": "Record manual payment", "form_submit_text": "Record payment"}, form
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "The amount 1.00 USD is more than the balance due." in body
    assert "Record payment" in body and "Record manual payment" in body


def test_a_service_error_goes_on_the_field_it_names_and_the_rest_above_the_fields():
    form = AmountForm(data={"amount": "1"})
    assert form.is_valid()

    add_service_error(
        form, ValidationError({"amount": "Too much.", "channel": "Choose how it was paid."})
    )
    add_service_error(form, ValidationError("This form was already used."))

    assert form.errors["amount"] == ["Too much."]
    assert form.non_field_errors() == ["Choose how it was paid.", "This form was already used."]
