"""use_local_stripe: wires the demo conference to the local fake, or says why not."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backoffice.models import Conference
from backoffice.services.demo import DEMO_CONFERENCE
from backoffice.services.local_stripe import LOCAL_SECRET_KEY, LOCAL_WEBHOOK_SECRET
from tests.stripe_fixtures import LocalStripe, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db) -> Conference:
    return Conference.objects.create(**DEMO_CONFERENCE)


def use_local_stripe(*args: str) -> str:
    out = StringIO()
    call_command("use_local_stripe", *args, stdout=out)
    return out.getvalue()


def test_wires_the_demo_conference_and_says_where_its_webhooks_go(
    demo: Conference, localstripe: LocalStripe
) -> None:
    output = use_local_stripe("--api-base", localstripe.url, "--site-url", "http://127.0.0.1:8000")

    demo.refresh_from_db()
    assert demo.stripe_secret_key == LOCAL_SECRET_KEY
    assert demo.stripe_webhook_secret == LOCAL_WEBHOOK_SECRET
    assert (
        f"PyCon Demo 2026 uses the fake Stripe at {localstripe.url} (its webhooks go to "
        "http://127.0.0.1:8000/stripe/webhook/pycon-demo-2026/)." in output
    )


def test_refuses_a_demo_conference_with_keys_of_its_own(
    demo: Conference, localstripe: LocalStripe
) -> None:
    demo.stripe_publishable_key = "pk_test_51Own"
    demo.stripe_secret_key = "sk_test_51Own"
    demo.save()

    with pytest.raises(CommandError, match="has Stripe keys of its own"):
        use_local_stripe("--api-base", localstripe.url, "--site-url", "http://127.0.0.1:8000")


def test_refuses_when_there_is_no_demo_conference(localstripe: LocalStripe) -> None:
    with pytest.raises(CommandError, match="No conference 'pycon-demo-2026'"):
        use_local_stripe("--api-base", localstripe.url, "--site-url", "http://127.0.0.1:8000")


def test_gives_up_when_the_fake_does_not_answer(demo: Conference) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CommandError, match=f"The fake Stripe at {closed}"):
        use_local_stripe("--api-base", closed, "--site-url", "http://127.0.0.1:8000", "--wait", "1")
