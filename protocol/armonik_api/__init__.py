"""Our protobuf sources for ArmoniK's gRPC API v1, wire-compatible with ArmoniK's own (same packages, names, numbers).

Written by hand from ArmoniK's published API v1 (as the PyPI package ``armonik`` ships it), covering every service
but the deprecated Submitter and Authentication, plus the worker-side Agent and Worker; modules live in ``protos/``.
They keep the same full names as ``armonik.protogen``; built in a descriptor pool of their own (``pool.py``), they
can be imported beside it.
Regenerate the ``*_pb2*.py*`` modules after editing a ``.proto``: ``scripts/gen_protos.sh`` (from the repo root).
"""
