from django.urls import path

from miner.consumers import ExecutorConsumer, ValidatorConsumer

websocket_urlpatterns = [
    path("ws/validator/", ValidatorConsumer.as_asgi()),
    path("ws/executor/", ExecutorConsumer.as_asgi()),
]
