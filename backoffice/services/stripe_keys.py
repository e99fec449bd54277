"""What a conference's Stripe keys must look like: their prefixes, and one mode for the pair.

Stripe's keys say what they are in their prefix: ``pk_test_``/``pk_live_``
(publishable), ``sk_``/``rk_`` then ``test_``/``live_`` (secret or restricted),
``whsec_`` (a webhook endpoint's signing secret). The local fake accepts any such
key, so ``pk_test_local``/``sk_test_local``/``whsec_local`` pass as they are.
"""

from enum import StrEnum

from django.core.exceptions import ValidationError


class KeyMode(StrEnum):
    """Stripe's two modes: a test key never moves real money."""

    TEST = "test"
    LIVE = "live"


PUBLISHABLE_PREFIXES = ("pk_test_", "pk_live_")
SECRET_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")
WEBHOOK_SECRET_PREFIXES = ("whsec_",)


def _named(prefixes: tuple[str, ...]) -> str:
    """'a, b or c' for an error message."""
    return ", ".join(prefixes[:-1]) + f" or {prefixes[-1]}" if len(prefixes) > 1 else prefixes[0]


API_KEYS_PAGE = "Developers › API keys"
WEBHOOK_PAGE = "Developers › Webhooks › your endpoint › Signing secret"


def _check(value: str, prefixes: tuple[str, ...], what: str, where: str) -> None:
    """Refuse a value that does not start with one of the prefixes (and more after it)."""
    if not any(value.startswith(prefix) and len(value) > len(prefix) for prefix in prefixes):
        raise ValidationError(
            f"This is not a {what}: it starts with {_named(prefixes)}, as copied from "
            f"Stripe's dashboard ({where}).",
            code="stripe_key_prefix",
        )


def is_secret(value: str) -> bool:
    """Whether the value is one of the secret kinds (a secret, restricted or webhook key)."""
    return value.startswith(("sk_", "rk_", *WEBHOOK_SECRET_PREFIXES))


def validate_publishable_key(value: str) -> None:
    """A publishable key starts with pk_test_ or pk_live_; a secret is refused as one."""
    if is_secret(value):
        raise ValidationError(
            "This is a secret key, not the publishable one: paste it into its own field "
            "below (it is never shown again), and the publishable key (pk_test_ or pk_live_) "
            "here.",
            code="stripe_secret_as_publishable",
        )
    _check(value, PUBLISHABLE_PREFIXES, "Stripe publishable key", API_KEYS_PAGE)


def validate_secret_key(value: str) -> None:
    """A secret (or restricted) key starts with sk_ or rk_, then test_ or live_."""
    _check(value, SECRET_PREFIXES, "Stripe secret key", API_KEYS_PAGE)


def validate_webhook_secret(value: str) -> None:
    """A webhook signing secret starts with whsec_."""
    _check(value, WEBHOOK_SECRET_PREFIXES, "Stripe webhook signing secret", WEBHOOK_PAGE)


def key_mode(key: str) -> KeyMode | None:
    """The mode a publishable or secret key belongs to, or None when it names none."""
    for mode in KeyMode:
        if key[3:].startswith(f"{mode}_"):
            return mode
    return None


def validate_key_pair(publishable: str, secret: str) -> None:
    """Both keys of one conference are test keys, or both live keys (when both are set)."""
    publishable_mode, secret_mode = key_mode(publishable), key_mode(secret)
    if publishable_mode and secret_mode and publishable_mode != secret_mode:
        raise ValidationError(
            f"The publishable key is a {publishable_mode} key but the secret key is a "
            f"{secret_mode} key: use both keys from Stripe's {publishable_mode} mode, or both "
            f"from its {secret_mode} mode.",
            code="stripe_key_mode",
        )
