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
