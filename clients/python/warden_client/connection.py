"""Which member to talk to: the endpoint list, the leader last seen, and the retry rules.

The same rules as the Rust client's (``crates/warden-client/src/connection.rs``). A call
goes to the member that last answered (the leader, usually). A member that is not the
leader answers UNAVAILABLE with kind ``NotLeader`` and the leader's client address in
``warden-leader``; the call follows it (safe for any request: nothing was proposed). A
member that answers but cannot serve now (``NoQuorum``, ``MemberStopped``) is asked again
within the call's deadline (10 s by default); a cluster none of whose members accepts a
connection fails the call after about a second.

A status without a kind came from the transport: a member that could not be connected to
is skipped (nothing was sent); any other break may have come after the request arrived,
so it is retried for reads and idempotent calls, and a plain write fails with
:class:`OutcomeUnknown`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from . import _stubs
from .errors import (
    LEADER_METADATA,
    OutcomeUnknown,
    Unavailable,
    WardenError,
    from_rpc,
    kind_of,
    metadata,
)

log = logging.getLogger(__name__)

# The client port's message limit (warden_proto::MAX_CLIENT_MESSAGE_BYTES).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# How long one attempt of a plain call may take.
ATTEMPT_TIMEOUT = 10.0
# How long a call keeps asking when no member accepts a connection at all.
UNREACHABLE_LIMIT = 1.0

# Whether a request may be sent twice: reads and calls the server makes idempotent (a lock
# acquire re-attaches to its wait) are retried after any failure; plain writes only when
# they surely were not applied.
IDEMPOTENT = "idempotent"
ONCE = "once"

STUBS = {
    "KV": _stubs.kv_grpc.KVStub,
    "Session": _stubs.session_grpc.SessionStub,
    "Lock": _stubs.lock_grpc.LockStub,
    "Election": _stubs.election_grpc.ElectionStub,
    "Watch": _stubs.watch_grpc.WatchStub,
}

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Reconnect soon after a member comes back rather than after a long backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

# Kinds of UNAVAILABLE after which nothing was proposed: any request may go elsewhere.
NOTHING_PROPOSED = {"MemberStopped", "MemberRemoved", "NoQuorum"}


def endpoint(text: str) -> str:
    """``host:port`` from what a user wrote (``http://`` and a trailing ``/`` allowed)."""
    addr = text.strip()
    for scheme in ("http://", "https://"):
        addr = addr.removeprefix(scheme)
    addr = addr.rstrip("/")
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"endpoint {text!r} is not host:port (e.g. 127.0.0.1:7400)")
    return addr


def never_sent(error: grpc.RpcError) -> bool:
    """Whether the call failed to connect, so the request never left this process."""
    details = (error.details() or "").lower()
    return error.code() == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in details or "connection refused" in details
    )


def refused_everywhere(error: grpc.RpcError) -> bool:
    """Whether every member would refuse the call as this one's transport did: a method
    the member does not know (an older member), or a message over the size limit."""
    details = (error.details() or "").lower()
    return error.code() == grpc.StatusCode.UNIMPLEMENTED or (
        error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than" in details
    )


class Connection:
    """Endpoints, one channel per member, and the retry loop every call goes through."""

    def __init__(self, endpoints: list[str], deadline: float = 10.0):
        if not endpoints:
            raise ValueError(
                "no endpoint given: pass the members' client addresses, host:port each"
            )
        self.endpoints = [endpoint(e) for e in endpoints]
        self.deadline = deadline
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._preferred: str | None = None
        self.leader: str | None = None

    def apart(self) -> Connection:
        """The same endpoints with channels of their own (for a watch, whose unread
        messages would otherwise hold a share of a shared connection's window)."""
        other = Connection(self.endpoints, self.deadline)
        other._preferred = self._preferred
        other.leader = self.leader
        return other

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    def stub(self, addr: str, service: str) -> Any:
        with self._lock:
            channel = self._channels.get(addr)
            if channel is None:
                channel = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
                self._channels[addr] = channel
        return STUBS[service](channel)

    def forget(self, addr: str) -> None:
        """Drops the channel to ``addr``: the next call connects afresh, without waiting
        out a reconnect backoff."""
        with self._lock:
            channel = self._channels.pop(addr, None)
        if channel is not None:
            channel.close()

    def prefer(self, addr: str | None) -> None:
        with self._lock:
            self._preferred = addr

    def prefer_after(self, addr: str) -> None:
        """Moves on from a failed member: the next call starts with the endpoint after it."""
        if addr in self.endpoints:
            self.prefer(self.endpoints[(self.endpoints.index(addr) + 1) % len(self.endpoints)])
        else:
            self.prefer(None)

    def candidates(self) -> list[str]:
        """The order to try members in: the preferred one, then the list."""
        with self._lock:
            preferred = self._preferred
        rest = [e for e in self.endpoints if e != preferred]
        return ([preferred] if preferred else []) + rest

    def call(
        self,
        service: str,
        method: str,
        request: Any,
        retry: str = IDEMPOTENT,
        attempt: float | None = ATTEMPT_TIMEOUT,
    ) -> Any:
        """Calls ``service.method(request)`` on members until one serves it."""

        def one(addr: str) -> Any:
            return getattr(self.stub(addr, service), method)(request, timeout=attempt)

        return self.run(one, retry)

    def run(self, call: Callable[[str], Any], retry: str = IDEMPOTENT) -> Any:
        """Runs ``call(addr)`` against members until one serves it, following leader hints,
        for at most the deadline."""
        started = time.monotonic()
        last_answer: str | None = None
        reached = False
        round_ = 0
        while True:
            hinted: str | None = None
            unreachable: list[str] = []
            for addr in self.candidates():
                try:
                    value = call(addr)
                except grpc.RpcError as error:
                    kind = kind_of(error)
                    code = error.code()
                    answer = f"{addr}: {error.details()}"
                    if kind is None:
                        if never_sent(error):
                            self.forget(addr)
                            unreachable.append(f"cannot connect to {addr}: {error.details()}")
                            continue
                        if refused_everywhere(error):
                            raise from_rpc(error) from None
                        self.forget(addr)
                        if retry == ONCE:
                            self.prefer_after(addr)
                            raise OutcomeUnknown(
                                f"the connection to {addr} broke after the write was sent "
                                f"({error.details()}): it may or may not have been applied",
                                code=code,
                            ) from None
                        log.debug(
                            "transport failure on %s, trying the next member: %s", addr, error
                        )
                        reached, last_answer = True, answer
                        continue
                    if code != grpc.StatusCode.UNAVAILABLE:
                        raise from_rpc(error) from None
                    reached, last_answer = True, answer
                    if kind == "NotLeader":
                        if self.leader == addr:
                            self.leader = None
                        hint = metadata(error).get(LEADER_METADATA, "")
                        if hint and hint != addr:
                            log.debug("following the leader from %s to %s", addr, hint)
                            self.leader = hinted = hint
                            break
                    elif kind in NOTHING_PROPOSED:
                        if kind != "NoQuorum":
                            self.forget(addr)
                    elif retry == ONCE:
                        # Only "not the leader" proves a write was not proposed.
                        self.prefer_after(addr)
                        raise OutcomeUnknown(error.details(), code=code, kind=kind) from None
                    continue
                if retry == ONCE:
                    self.leader = addr  # a plain write was served: only the leader commits one
                self.prefer(addr)
                return value
            elapsed = time.monotonic() - started
            if elapsed >= self.deadline or (not reached and elapsed >= UNREACHABLE_LIMIT):
                raise self._unavailable(last_answer, unreachable)
            round_ += 1
            if hinted is not None:
                # A hint may name a member not ready to serve yet: after the first, pause.
                if round_ > 1:
                    time.sleep(min(round_, 5) * 0.02)
                self.prefer(hinted)
            else:
                self.prefer(None)
                time.sleep(min(round_, 5) * 0.02)

    def _unavailable(self, last_answer: str | None, unreachable: list[str]) -> WardenError:
        others = "; ".join(unreachable)
        if last_answer is None:
            last = (
                f"no member accepted a connection ({others}); check that the members are "
                "running and that the endpoints are their client addresses"
            )
        elif others:
            last = f"{last_answer} (and {others})"
        else:
            last = last_answer
        return Unavailable(
            f"no member of {','.join(self.endpoints)} served the call: {last}",
            code=grpc.StatusCode.UNAVAILABLE,
        )
