"""Operations endpoints: health probes and Prometheus metrics (outside the console login)."""

from django.urls import path

from project import health, metrics_view

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics_view.metrics_view, name="metrics"),
]
