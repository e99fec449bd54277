"""What every attendee-facing page and e-mail share (backoffice/services/email_content.py)."""

from backoffice.services.email_content import contact_address


def test_contact_address_prefers_contact_then_reply_to_then_sender(conference, settings):
    settings.DEFAULT_FROM_EMAIL = "Registrations <registration@pycon.example>"
    assert contact_address(conference) == "registration@pycon.example"

    conference.reply_to_email = "replies@pycon.example"
    assert contact_address(conference) == "replies@pycon.example"

    conference.contact_email = "help@pycon.example"
    assert contact_address(conference) == "help@pycon.example"
