"""The descriptor pool our ArmoniK modules are built in: a pool of their own, not protobuf's default.

Our messages keep ArmoniK's full names (``armonik.api.grpc.v1.TaskOptions`` …), as the stock
``armonik`` package's do. Both in protobuf's default pool would clash ("duplicate symbol") in any
process that imports the two, as the tests, a client's tools or a worker next to the SDK do. In a
pool of their own they live side by side; on the wire nothing changes (a name never travels).
``scripts/gen_protos.sh`` points the generated modules here.
"""

from google.protobuf import descriptor_pool, duration_pb2, empty_pb2, timestamp_pb2

__all__ = ["POOL"]

POOL = descriptor_pool.DescriptorPool()
for _known in (duration_pb2, timestamp_pb2, empty_pb2):  # the well-known types our files import
    POOL.AddSerializedFile(_known.DESCRIPTOR.serialized_pb)
