"""Production settings: Django's deployment checks and fail-fast configuration errors."""

import pytest

from tests.deploy_env import production_env, run_manage


def test_check_deploy_reports_no_warnings_with_production_settings() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("override", "warning"),
    [
        ({"DJANGO_SECURE_SSL_REDIRECT": "0"}, "security.W008"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"DJANGO_SECURE_COOKIES": "0"}, "security.W012"),
        ({"DJANGO_SECRET_KEY": "short"}, "security.W009"),
        ({"BACKOFFICE_SITE_URL": ""}, "backoffice.W002"),
    ],
)
def test_check_deploy_catches_a_weakened_setting(override: dict, warning: str) -> None:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_env(**override)
    )
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def test_missing_secret_key_is_a_start_up_error() -> None:
    result = run_manage("check", env=production_env(DJANGO_SECRET_KEY=""))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_missing_encryption_keys_is_a_start_up_error() -> None:
    result = run_manage("check", env=production_env(BACKOFFICE_ENCRYPTION_KEYS=""))
    assert result.returncode != 0
    assert "BACKOFFICE_ENCRYPTION_KEYS is not set" in result.stderr


def test_malformed_encryption_key_is_a_start_up_error_that_does_not_print_the_key() -> None:
    bad = "not-a-fernet-key-but-secret-looking-value"
    result = run_manage("check", env=production_env(BACKOFFICE_ENCRYPTION_KEYS=bad))
    assert result.returncode != 0
    assert "BACKOFFICE_ENCRYPTION_KEYS entry 1 is not a valid Fernet key" in result.stderr
    assert bad not in result.stderr + result.stdout


def test_debug_without_encryption_keys_derives_a_development_key() -> None:
    env = production_env(DJANGO_DEBUG="1", BACKOFFICE_ENCRYPTION_KEYS="")
    result = run_manage("check", env=env)
    assert result.returncode == 0, result.stderr


def test_production_settings_harden_cookies_and_headers() -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_PROXY_SSL_HEADER, s.X_FRAME_OPTIONS, s.SECURE_REFERRER_POLICY, "
        "s.CSRF_TRUSTED_ORIGINS, s.SECURE_HSTS_SECONDS)"
    )
    result = run_manage("shell", "-c", code, env=production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "True True True ('HTTP_X_FORWARDED_PROTO', 'https') DENY same-origin "
        "['https://backoffice.example.com'] 31536000"
    )


MAILER = "from django.conf import settings; print(settings.MAILERS['default'])"


def test_email_url_configures_the_default_mailer() -> None:
    result = run_manage("shell", "-c", MAILER, env=production_env())
    assert result.returncode == 0, result.stderr
    assert "'BACKEND': 'django.core.mail.backends.smtp.EmailBackend'" in result.stdout
    for option in (
        "'host': 'smtp.example.com'",
        "'port': 587",
        "'username': 'mailer'",
        "'password': 'secret'",
        "'use_tls': True",
    ):
        assert option in result.stdout


def test_debug_without_email_url_prints_mails_on_the_console() -> None:
    env = production_env(DJANGO_DEBUG="1", DJANGO_EMAIL_URL="")
    result = run_manage("shell", "-c", MAILER, env=env)
    assert result.returncode == 0, result.stderr
    assert "django.core.mail.backends.console.EmailBackend" in result.stdout
