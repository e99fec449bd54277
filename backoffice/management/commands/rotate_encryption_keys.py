"""Re-encrypt every stored secret with the newest key in BACKOFFICE_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from backoffice.encryption import reencrypt
from backoffice.fields import EncryptedTextField, StoredCiphertext
from backoffice.models import Conference


class Command(BaseCommand):
    """Re-encrypt all encrypted columns with the newest key, so older keys can be removed."""

    help = (
        "Re-encrypt every stored Stripe secret with the first (newest) key of "
        "BACKOFFICE_ENCRYPTION_KEYS. Run after putting a new key in front; then drop old keys."
    )

    def handle(self, *args, **options) -> None:
        """Rotate each row under a row lock; stop with a clear error on an unreadable secret."""
        fields = [f for f in Conference._meta.get_fields() if isinstance(f, EncryptedTextField)]
        rows = 0
        values = 0
        for pk in Conference.objects.order_by("pk").values_list("pk", flat=True):
            with transaction.atomic():
                conference = Conference.objects.select_for_update().get(pk=pk)
                changed = []
                for field in fields:
                    stored = conference.__dict__.get(field.attname)
                    if isinstance(stored, StoredCiphertext):
                        token = reencrypt(
                            stored.token, label=f"Conference.{field.name} (pk={conference.pk})"
                        )
                        conference.__dict__[field.attname] = StoredCiphertext(token)
                        changed.append(field.attname)
                if changed:
                    conference.save(update_fields=changed)
                    rows += 1
                    values += len(changed)
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {values} secret(s) in {rows} conference(s).")
        )
