from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "apps.dashboards"
    label = "dashboards"

    def ready(self) -> None:
        from apps.dashboards import receivers
        from apps.usage.signals import rollups_refreshed

        rollups_refreshed.connect(receivers.refresh_narrow_rollups, dispatch_uid="dashboards.narrow_rollups")
