from django.urls import path

from apps.budgets.api import BudgetCheckView

urlpatterns = [
    path("check/", BudgetCheckView.as_view(), name="api-budgets-check"),
]
