"""manage.py delete_expired_exports: deletes expired exports and their files, says how many."""

import datetime
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from backoffice.models import ExportFile
from tests.ledger_factories import make_staff

pytestmark = pytest.mark.django_db


def test_the_command_deletes_expired_exports_and_their_files(media_root):
    user = make_staff("finance", "backoffice.view_payment", "backoffice.export_payment")
    now = timezone.now()
    expired, kept = (
        ExportFile.objects.create(
            requested_by=user,
            list_name="backoffice.payment",
            file_format=ExportFile.Format.CSV,
            status=ExportFile.Status.READY,
            expires_at=now + datetime.timedelta(days=days),
        )
        for days in (-1, 1)
    )
    for export in (expired, kept):
        export.file.save(f"export-{export.pk}.csv", ContentFile(b"\xef\xbb\xbfAmount\r\n"))
    out = io.StringIO()

    call_command("delete_expired_exports", stdout=out)

    assert out.getvalue() == "Deleted 1 expired export.\n"
    assert list(ExportFile.objects.all()) == [kept]
    assert not default_storage.exists(expired.file.name)
    assert default_storage.exists(kept.file.name)
