"""Who did something, as staff read it: a user's name, or Stripe."""

from django.contrib.auth.base_user import AbstractBaseUser

# Who acted on an order when Stripe did (a card payment, a webhook); see services/history.py.
STRIPE_ACTOR = "Stripe"


def user_name(user: AbstractBaseUser) -> str:
    """A user as staff read it: the full name, falling back to the username.

    The one rendering of a person everywhere (lists, order page, history, exports);
    ``backoffice.exports.user_name_sql`` is its SQL twin for the streaming export.
    """
    full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full_name or user.get_username()


def actor_name(user: AbstractBaseUser | None, label: str = "") -> str:
    """Who did something, as staff read it: the user's name (``user_name``), or the label.

    The one rendering of "who did it" (a payment's "Recorded by", a history entry's actor).
    """
    if user is not None:
        return user_name(user)
    return label or "—"
