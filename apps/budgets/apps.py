from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "apps.budgets"
    label = "budgets"

    def ready(self) -> None:
        from apps.budgets import receivers
        from apps.usage.signals import rollups_refreshed

        # The ledger announces refreshed days; budgets follow without the ledger importing them.
        rollups_refreshed.connect(receivers.refresh_budget_states, dispatch_uid="budgets.refresh_states")
