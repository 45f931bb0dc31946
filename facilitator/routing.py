from django.urls import path

from facilitator.consumers import ClientEventsConsumer, ValidatorConsumer

websocket_urlpatterns = [
    path("ws/validator/", ValidatorConsumer.as_asgi()),
    path("ws/client/", ClientEventsConsumer.as_asgi()),
]
