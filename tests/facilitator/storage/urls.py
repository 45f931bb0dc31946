"""The facilitator's object URLs mounted as the project will mount them, for the view tests."""

from django.urls import include, path

urlpatterns = [path("objects/", include("facilitator.storage.urls"))]
