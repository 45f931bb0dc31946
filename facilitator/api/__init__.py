"""The public REST API (django-ninja); OpenAPI schema at ``/api/v1/openapi.json``, docs at ``/api/v1/docs``."""
