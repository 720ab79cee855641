"""The project's URLs plus views that crash, for the error-page tests (ROOT_URLCONF in those tests only)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.views import APIView

from tourapp.urls import handler400, handler403, handler404, handler500
from tourapp.urls import urlpatterns as project_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

# Built at run time: the debug page shows the source lines around a crash, and they are no secret.
LOCAL_SECRET = "-".join(["s3cret", "in", "a", "local", "url"])


def crash_view(request: HttpRequest) -> HttpResponse:
    events_url = f"amqp://tourapp:{LOCAL_SECRET}@127.0.0.1:5672/tourapp"  # a local an error report shows
    raise RuntimeError(f"cannot reach {events_url}")  # as client libraries word it


class CrashApi(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def get(self, request: Request) -> HttpResponse:
        return crash_view(request._request)


urlpatterns = [
    path("api/crash/", crash_view),
    path("api/crash-drf/", CrashApi.as_view()),
    path("crash/", crash_view),
    *project_urlpatterns,
]
