"""The generated messages and stubs, imported in one place with a clear error if missing.

They are made by ``python -m warden_client.generate`` (see ``generate.py``), not committed.
"""

try:
    from ._generated.warden.v1 import election_pb2 as election
    from ._generated.warden.v1 import election_pb2_grpc as election_grpc
    from ._generated.warden.v1 import kv_pb2 as kv
    from ._generated.warden.v1 import kv_pb2_grpc as kv_grpc
    from ._generated.warden.v1 import lock_pb2 as lock
    from ._generated.warden.v1 import lock_pb2_grpc as lock_grpc
    from ._generated.warden.v1 import session_pb2 as session
    from ._generated.warden.v1 import session_pb2_grpc as session_grpc
    from ._generated.warden.v1 import watch_pb2 as watch
    from ._generated.warden.v1 import watch_pb2_grpc as watch_grpc
except ImportError as e:  # pragma: no cover - depends on the checkout
    raise ImportError(
        "warden_client's gRPC stubs are not generated: run `python -m warden_client.generate` "
        f"in clients/python (it needs grpcio-tools) ({e})"
    ) from e

__all__ = [
    "election",
    "election_grpc",
    "kv",
    "kv_grpc",
    "lock",
    "lock_grpc",
    "session",
    "session_grpc",
    "watch",
    "watch_grpc",
]
