"""The base of every model admin here: unfold's ModelAdmin on Django 6.1's action API."""

from django.contrib import admin
from django.contrib.admin.options import ActionLocation
from django.http import HttpRequest
from django.utils.translation import gettext as _
from unfold import admin as unfold_admin


class ModelAdmin(unfold_admin.ModelAdmin):
    """unfold's ModelAdmin; the backoffice's model admins inherit this, not unfold's directly."""

    def get_action_choices(
        self,
        request: HttpRequest,
        default_choices: list[tuple[str, str]] | None = None,
        action_location: ActionLocation = ActionLocation.CHANGE_LIST,
    ) -> list[tuple[str, str]]:
        """The actions offered at a location, after unfold's "Select action" placeholder.

        unfold 0.110 overrides this without ``action_location``: Django 6.1 then
        warns (RemovedInDjango2028Warning) on every list and order page, and hands
        the change form the list's choices. Same placeholder, Django's signature.
        """
        return admin.ModelAdmin.get_action_choices(
            self, request, [("", _("Select action"))], action_location=action_location
        )
