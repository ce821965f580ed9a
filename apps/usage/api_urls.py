from django.urls import path

from apps.usage.api import SpendView

urlpatterns = [
    path("", SpendView.as_view(), name="api-spend"),
]
