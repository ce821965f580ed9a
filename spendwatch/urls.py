from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from spendwatch.health import healthz

# The admin signs in through allauth: its rate limits, MFA and session policy, not a second login form.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("apps.ingestion.urls")),
    path("api/v1/budgets/", include("apps.budgets.api_urls")),
    path("api/v1/spend/", include("apps.usage.api_urls")),
    path("api/v1/metrics/", include("apps.metrics.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up code as a file: the CSP forbids inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("sources/reconciliation/", include("apps.usage.urls")),
    path("sources/", include("apps.ingestion.page_urls")),
    path("budgets/", include("apps.budgets.urls")),
    path("savings/", include("apps.overuse.urls")),
    path("attribution/", include("apps.org.urls")),
    path("audit/", include("apps.audit.urls")),
    path("prices/", include("apps.catalog.urls")),
    path("exports/", include("apps.exports.urls")),
    path("digests/", include("apps.digests.urls")),
    path("metrics/", include("apps.metrics.urls")),
    path("", include("apps.dashboards.urls")),
]
