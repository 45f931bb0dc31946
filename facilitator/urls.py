from django.urls import include, path

from facilitator.api.site import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("objects/", include("facilitator.storage.urls")),
]
