"""Where an uploaded import file waits between the preview and the confirm step."""

from uuid import uuid4

from django.core.cache import caches
from import_export.tmp_storages import CacheStorage

IMPORT_CACHE_ALIAS = "import_export"


class DatabaseCacheImportStorage(CacheStorage):
    """import-export's cache storage on the ``import_export`` cache (a database table).

    Every gunicorn worker and host sees the same table, unlike the library's
    default temporary folder, so the confirm step may land on any worker.
    """

    def save(self, data: bytes | str) -> None:
        """Store the uploaded file's content under a random name."""
        if not self.name:
            self.name = uuid4().hex
        caches[IMPORT_CACHE_ALIAS].set(self.CACHE_PREFIX + self.name, data, self.CACHE_LIFETIME)

    def read(self) -> bytes | str | None:
        """Return the stored content."""
        return caches[IMPORT_CACHE_ALIAS].get(self.CACHE_PREFIX + self.name)

    def remove(self) -> None:
        """Forget the stored content."""
        caches[IMPORT_CACHE_ALIAS].delete(self.CACHE_PREFIX + self.name)
