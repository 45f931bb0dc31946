from django.apps import AppConfig


class MinerConfig(AppConfig):
    name = "miner"
    verbose_name = "Gridmarket miner"
