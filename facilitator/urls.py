from django.urls import path

from facilitator.api.site import api

urlpatterns = [path("api/v1/", api.urls)]
