from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    # Health (/health/live, /health/ready), /metrics and the admin ops dashboard: before admin/.
    path("", include("tourapp.ops.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("availability.api.urls")),
    path("api/", include("bookings.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

handler404 = "tourapp.exceptions.not_found_handler"
