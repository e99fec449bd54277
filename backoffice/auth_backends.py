"""Authentication backends: django-axes' lockout check for logins over HTTP."""

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class AxesLockoutBackend(AxesStandaloneBackend):
    """Refuse logins of a locked-out username+IP; authenticates nobody itself.

    django-axes needs the request to know the client's address. Every login over
    HTTP (the admin login form) passes it; calls without one (the test client's
    ``login()``, the shell) cannot be brute-forced from outside and are let through
    to the next backend instead of failing with AxesBackendRequestParameterRequired.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Raise axes' PermissionDenied for a locked-out client; otherwise return None."""
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
