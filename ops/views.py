"""Liveness, readiness and the staff-only operations dashboard."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views import View
from django.views.decorators.cache import never_cache
from health_check.mixins import CheckMixin


@never_cache
def liveness_view(request: HttpRequest) -> HttpResponse:
    """The process answers HTTP. Touches no dependency, so a broker outage never restarts web."""
    return JsonResponse({"status": "ok"})


class ReadinessView(CheckMixin, View):
    """Every dependency, by name: 200 when all work, 503 naming what does not."""

    def get(self, request: HttpRequest) -> HttpResponse:
        failed = bool(self.check())
        checks = {
            name: {
                "ok": not plugin.errors,
                "detail": str(plugin.pretty_status()),
                "ms": round(plugin.time_taken * 1000, 1),
            }
            for name, plugin in self.plugins.items()
        }
        body = {"status": "unavailable" if failed else "ok", "checks": checks}
        response = JsonResponse(body, status=503 if failed else 200)
        response["Cache-Control"] = "no-store"
        return response


@staff_member_required
def ops_dashboard_view(request: HttpRequest) -> HttpResponse:
    from ops.selectors import ops_dashboard

    context = {**admin.site.each_context(request), "title": "Operations dashboard", **ops_dashboard()}
    return TemplateResponse(request, "admin/ops/dashboard.html", context)
