"""Stripe key rules: each key's prefix, and one mode (test or live) for a conference's pair."""

import pytest
from django.core.exceptions import ValidationError

from backoffice.services.stripe_keys import (
    KeyMode,
    key_mode,
    validate_key_pair,
    validate_publishable_key,
    validate_secret_key,
    validate_webhook_secret,
)


@pytest.mark.parametrize("key", ["pk_test_local", "pk_live_51Abc", "pk_test_51HxYz"])
def test_publishable_keys_of_either_mode_pass(key):
    validate_publishable_key(key)


@pytest.mark.parametrize("key", ["pk_local", "pk_test_", "test_local", "PK_TEST_x"])
def test_anything_else_is_no_publishable_key(key):
    with pytest.raises(ValidationError, match="starts with pk_test_ or pk_live_"):
        validate_publishable_key(key)


@pytest.mark.parametrize("key", ["sk_test_local", "rk_live_x", "whsec_x"])
def test_a_secret_is_refused_as_a_publishable_key_by_name(key):
    with pytest.raises(ValidationError, match="This is a secret key, not the publishable one"):
        validate_publishable_key(key)


def test_each_kind_of_key_says_where_stripe_shows_it():
    with pytest.raises(ValidationError, match="Developers › API keys"):
        validate_secret_key("sk_x")
    with pytest.raises(ValidationError, match="Developers › Webhooks › your endpoint"):
        validate_webhook_secret("wh_x")


@pytest.mark.parametrize("key", ["sk_test_local", "sk_live_51Abc", "rk_test_51Abc", "rk_live_x"])
def test_secret_and_restricted_keys_of_either_mode_pass(key):
    validate_secret_key(key)


@pytest.mark.parametrize("key", ["sk_local", "pk_test_local", "sk_", "rk_prod_x", "whsec_x"])
def test_anything_else_is_no_secret_key(key):
    with pytest.raises(ValidationError, match="sk_test_, sk_live_, rk_test_ or rk_live_"):
        validate_secret_key(key)


def test_a_webhook_secret_starts_with_whsec():
    validate_webhook_secret("whsec_local")
    with pytest.raises(ValidationError, match="starts with whsec_"):
        validate_webhook_secret("sk_test_local")


def test_the_local_fakes_keys_are_a_valid_test_pair():
    validate_publishable_key("pk_test_local")
    validate_secret_key("sk_test_local")
    validate_webhook_secret("whsec_local")
    validate_key_pair("pk_test_local", "sk_test_local")
    assert key_mode("pk_test_local") is key_mode("sk_test_local") is KeyMode.TEST


@pytest.mark.parametrize(
    ("publishable", "secret"),
    [("pk_live_1", "sk_live_1"), ("pk_test_1", "rk_test_1"), ("", "sk_live_1"), ("pk_live_1", "")],
)
def test_keys_of_one_mode_or_a_missing_one_pass(publishable, secret):
    validate_key_pair(publishable, secret)


@pytest.mark.parametrize(
    ("publishable", "secret", "says"),
    [
        ("pk_test_1", "sk_live_1", "publishable key is a test key but the secret key is a live"),
        ("pk_live_1", "rk_test_1", "publishable key is a live key but the secret key is a test"),
    ],
)
def test_a_test_key_beside_a_live_key_is_refused(publishable, secret, says):
    with pytest.raises(ValidationError, match=says):
        validate_key_pair(publishable, secret)
