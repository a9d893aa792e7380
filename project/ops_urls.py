"""Operations endpoints: health probes and Prometheus metrics (outside the console login)."""

from django.urls import path

from project import health, metrics

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
