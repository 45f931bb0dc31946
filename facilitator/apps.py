from django.apps import AppConfig


class FacilitatorConfig(AppConfig):
    name = "facilitator"
    verbose_name = "Gridmarket facilitator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from facilitator import checks  # noqa: F401  (registers the system checks)
        from facilitator.control import agent_calls, dispatch  # noqa: F401  (the agent's relayed calls, the job-end hook)
