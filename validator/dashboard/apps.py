from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "validator.dashboard"
    label = "dashboard"
    verbose_name = "Gridmarket validator dashboard"
