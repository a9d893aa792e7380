from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from project import api
from project.login import LoginView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The three REST faces over the same models and service functions.
    path("engine-rest/version", api.version, name="camunda-version"),
    path("engine-rest/engine", api.engines, name="camunda-engines"),
    path("engine-rest/", include("jobs.api_urls")),
    path("engine-rest/", include("external_tasks.api_urls")),
    path("engine-rest/", include("project.incident_urls")),
    path("engine-rest/", include("project.batch_urls")),
    path("external-job-api/", include("external_tasks.flowable_urls")),
    path("api/", include("external_tasks.seed_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api-docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="api-docs",
    ),
    # Health, metrics and other operations endpoints.
    path("", include("project.ops_urls")),
    # The console.
    path("", include("console.urls")),
]

handler400 = "project.errors.bad_request"
handler404 = "project.errors.not_found"
handler500 = "project.errors.server_error"
