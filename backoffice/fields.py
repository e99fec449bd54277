"""Model fields: secrets encrypted at rest, plain text in Python."""

from typing import Any

from django.core.exceptions import FieldError
from django.db import models
from django.db.models.lookups import Exact
from django.db.models.query_utils import DeferredAttribute

from backoffice.encryption import decrypt, encrypt, is_our_token


class StoredCiphertext:
    """A value as read from the database, still encrypted; decrypted on first access."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return "<StoredCiphertext>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredCiphertext) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)


class DecryptingAttribute(DeferredAttribute):
    """Descriptor giving the plain secret; decrypts lazily so bulk reads pay nothing."""

    def __get__(self, instance: models.Model | None, cls: type | None = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, StoredCiphertext):
            label = f"{type(instance).__name__}.{self.field.name} (pk={instance.pk})"
            value = decrypt(value.token, label=label)
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class EmptyOnlyExact(Exact):
    """``field=""`` works (is the secret set?); any other value could never match ciphertext."""

    def get_prep_lookup(self) -> Any:
        if self.rhs not in ("", None):
            raise FieldError(
                f"{self.lhs.target.name} is encrypted: it can only be compared with ''."
            )
        return super().get_prep_lookup()


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; the model attribute holds the plain value.

    Empty stays empty (so ``filter(field="")`` finds unset secrets). Only the
    ``exact`` (with "") and ``isnull`` lookups are allowed.
    """

    descriptor_class = DecryptingAttribute

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        """Wrap a non-empty token; decryption waits until the attribute is read."""
        if value in (None, ""):
            return value
        return StoredCiphertext(value)

    def to_python(self, value: Any) -> Any:
        """Keep a stored token as it is (also one read back from a dumpdata fixture)."""
        if isinstance(value, StoredCiphertext):
            return value
        value = super().to_python(value)
        if value and is_our_token(value):
            return StoredCiphertext(value)
        return value

    def value_to_string(self, obj: models.Model) -> str:
        """Serialise (dumpdata) the token, never the plain secret."""
        value = obj.__dict__.get(self.attname)
        if isinstance(value, StoredCiphertext):
            return value.token
        return encrypt(value) if value else ""

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        """Save an untouched stored token as it is, without decrypting it."""
        return model_instance.__dict__.get(self.attname)

    def get_prep_value(self, value: Any) -> Any:
        """Encrypt plain text with the newest key; pass stored tokens and blanks through."""
        if isinstance(value, StoredCiphertext):
            return value.token
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)

    def get_lookup(self, lookup_name: str) -> Any:
        """Allow only lookups that make sense on ciphertext."""
        if lookup_name == "exact":
            return EmptyOnlyExact
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None
