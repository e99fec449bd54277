"""Encryption of secrets stored in the database: Fernet keys from BACKOFFICE_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts (MultiFernet), so a new key can be put
in front, the rows re-encrypted (`manage.py rotate_encryption_keys`) and the old
key dropped. Error messages never include a key or a secret.
"""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretDecryptionError(ImproperlyConfigured):
    """A stored secret cannot be decrypted with any configured key."""


def development_key() -> str:
    """Return a Fernet key derived from SECRET_KEY, for DEBUG runs without configured keys."""
    digest = hashlib.sha256(b"backoffice-dev-encryption-key:" + settings.SECRET_KEY.encode())
    return base64.urlsafe_b64encode(digest.digest()).decode()


def configured_keys() -> tuple[str, ...]:
    """The keys in use, newest first; a derived development key only when DEBUG is on."""
    keys = tuple(k.strip() for k in settings.BACKOFFICE_ENCRYPTION_KEYS if k.strip())
    if keys:
        return keys
    if settings.DEBUG:
        return (development_key(),)
    raise ImproperlyConfigured(
        "BACKOFFICE_ENCRYPTION_KEYS is not set: stored Stripe secrets cannot be read or "
        "written. Generate a key with `python manage.py generate_encryption_key`."
    )


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    """Build the MultiFernet for a tuple of keys (cached per key set)."""
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"BACKOFFICE_ENCRYPTION_KEYS entry {position} is not a valid Fernet key "
                "(expected 32 url-safe base64-encoded bytes, as printed by "
                "`python manage.py generate_encryption_key`)."
            ) from None
    return MultiFernet(fernets)


def keyring() -> MultiFernet:
    """The MultiFernet for the configured keys."""
    return _multi_fernet(configured_keys())


def validate_keys() -> None:
    """Raise ImproperlyConfigured now if the configured keys are missing or malformed."""
    keyring()


def generate_key() -> str:
    """Return a new random Fernet key."""
    return Fernet.generate_key().decode()


def encrypt(plaintext: str) -> str:
    """Encrypt a secret with the newest key."""
    return keyring().encrypt(plaintext.encode()).decode()


def decrypt(token: str, *, label: str = "a stored secret") -> str:
    """Decrypt a stored secret; a token no configured key opens raises SecretDecryptionError."""
    try:
        return keyring().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            f"Cannot decrypt {label}: none of the keys in BACKOFFICE_ENCRYPTION_KEYS "
            "opens it. Restore the key it was encrypted with (keys are newest first; "
            "keep old keys until `manage.py rotate_encryption_keys` has run)."
        ) from None


def is_our_token(value: str) -> bool:
    """Whether a string is a Fernet token that one of the configured keys opens."""
    if not value.startswith("gAAAAA"):
        return False
    try:
        keyring().decrypt(value.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(token: str, *, label: str = "a stored secret") -> str:
    """Re-encrypt a stored token with the newest key (for key rotation)."""
    try:
        return keyring().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            f"Cannot re-encrypt {label}: none of the keys in BACKOFFICE_ENCRYPTION_KEYS opens it."
        ) from None


def mask(secret: str) -> str:
    """A hint for a stored secret that shows only its last 4 characters."""
    if not secret:
        return ""
    return "••••" + secret[-4:] if len(secret) > 8 else "••••"
