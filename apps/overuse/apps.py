from django.apps import AppConfig


class OveruseConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.overuse"
    verbose_name = "Overuse and savings"
