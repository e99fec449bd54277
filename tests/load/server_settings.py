"""Settings of the load tests' gunicorn: production settings plus the ``order_paid`` probe app.

Everything else comes from the environment exactly as in production
(``tests.deploy_env.production_env``).
"""

from django.conf import global_settings

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.load.probe.apps.ProbeConfig"]

# Staff users are created by the test process, which hashes with MD5 for speed
# (tests/conftest.py); the server must accept those hashes and not re-hash them
# with PBKDF2 on every login (about a second of CPU each on a busy machine).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    *global_settings.PASSWORD_HASHERS,
]
