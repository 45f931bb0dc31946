from django.urls import include, path

from facilitator.api.site import api
from facilitator.registry import views as registry

urlpatterns = [
    path("api/v1/registry", registry.snapshot, name="registry"),
    path("api/v1/registry/announce", registry.announce, name="registry-announce"),
    path("api/v1/", api.urls),
    path("objects/", include("facilitator.storage.urls")),
]
