"""The errors of the client: what the cluster said, with its status code and error kind.

Every status a warden member makes carries its error kind in the ``warden-error``
metadata (``NoNode``, ``NotLeader``, ``Timeout``, ...; the list is
``crates/warden-proto/src/error_kind.rs``), so programs can tell errors apart without
reading messages. A status without one came from the transport, not from a member.
"""

from __future__ import annotations

import grpc

ERROR_METADATA = "warden-error"
LEADER_METADATA = "warden-leader"


class WardenError(Exception):
    """A call failed. ``kind`` is the member's error kind (None for a transport failure),
    ``code`` the gRPC status code, ``message`` what the member (or transport) said."""

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, kind: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind

    def __str__(self) -> str:
        details = [d for d in (self.code.name if self.code else None, self.kind) if d]
        return f"{self.message} ({', '.join(details)})" if details else self.message


class Unavailable(WardenError):
    """No member served the call before its deadline: the message says what the last
    member reached answered, or why none could be reached."""


class OutcomeUnknown(WardenError):
    """A write's connection broke after it was sent: it may or may not have been applied."""


def metadata(error: grpc.RpcError) -> dict[str, str]:
    """The metadata a failed call came back with (a trailers-only answer's included)."""
    found: dict[str, str] = {}
    for getter in ("initial_metadata", "trailing_metadata"):
        try:
            pairs = getattr(error, getter)() or ()
        except Exception:  # noqa: BLE001 - a failed call may have neither
            continue
        for key, value in pairs:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            found.setdefault(key, value)
    return found


def kind_of(error: grpc.RpcError) -> str | None:
    """The member's error kind, None if the transport made the status."""
    return metadata(error).get(ERROR_METADATA)


def from_rpc(error: grpc.RpcError) -> WardenError:
    """The error for a status a member (or the transport) answered."""
    code = error.code() if hasattr(error, "code") else None
    message = error.details() if hasattr(error, "details") else str(error)
    return WardenError(message or str(code), code=code, kind=kind_of(error))
