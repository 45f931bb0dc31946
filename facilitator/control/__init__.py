"""The task-graph control plane: ArmoniK's gRPC API v1 on the facilitator (docs/control-plane.md).

``server`` builds the gRPC server the facilitator's process runs beside its ASGI app; ``auth``
checks every call's signature; one module per service (``sessions``, ``info`` for Versions and
HealthChecks); ``filters`` evaluates ArmoniK's list filters; ``models`` holds the tables.
"""
