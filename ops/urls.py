from django.urls import path

from ops.metrics import metrics_view
from ops.views import ReadinessView, liveness_view, ops_dashboard_view

urlpatterns = [
    path("health/live", liveness_view, name="health-live"),
    path("health/ready", ReadinessView.as_view(), name="health-ready"),
    path("metrics", metrics_view, name="prometheus-metrics"),
    # Before admin.site.urls in tourapp/urls.py: the admin's catch-all would answer otherwise.
    path("admin/ops/dashboard/", ops_dashboard_view, name="ops-dashboard"),
]
