"""Root URL configuration."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from backoffice.views.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("backoffice.urls")),
    # Normally answered by HealthCheckMiddleware before routing; routed too for reverse().
    path("healthz", healthz, name="healthz"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]

# Error pages in the look of the area they happen in (admin, checkout, public).
handler403 = "backoffice.views.errors.forbidden"
handler404 = "backoffice.views.errors.not_found"
handler500 = "backoffice.views.errors.server_error"
