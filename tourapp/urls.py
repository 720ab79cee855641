from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from tourapp.api_docs import RedocView, SwaggerUiView
from tourapp.api_root import ApiRootView

urlpatterns = [
    # Health (/health/live, /health/ready), /metrics and the admin ops dashboard: before admin/.
    path("", include("ops.urls")),
    path("admin/", admin.site.urls),
    path("api/", ApiRootView.as_view(), name="api-root"),
    path("api/", include("availability.api.urls")),
    path("api/", include("bookings.api.urls")),
    path("api/", include("accounts.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI and ReDoc load their assets from our static files (drf-spectacular-sidecar): offline.
    path("api/docs/", SwaggerUiView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", RedocView.as_view(url_name="schema"), name="redoc"),
]

# Under /api/ every error is the API's JSON error shape; elsewhere Django's short pages.
handler400 = "tourapp.exceptions.bad_request_handler"
handler403 = "tourapp.exceptions.permission_denied_handler"
handler404 = "tourapp.exceptions.not_found_handler"
handler500 = "tourapp.exceptions.server_error_handler"
