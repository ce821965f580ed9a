from django.urls import path

from apps.metrics.api import MetricValuesView

urlpatterns = [
    path("<slug:key>/values/", MetricValuesView.as_view(), name="api-metric-values"),
]
