"""A session: a client's liveness, kept by a background keepalive thread.

As in the Rust client (``crates/warden-client/src/session.rs``): the thread keeps a
KeepAlive stream to the leader and renews every ttl/3. When the stream breaks or a renewal
goes unanswered for an interval, the session is in jeopardy and the thread looks for the
leader on every member, until a renewal succeeds (alive again) or a ttl has passed since
the last renewal was acknowledged (lost: the cluster has expired it, or will, and its
ephemeral nodes, locks and leaderships went with it).

The first renewal of each stream lists the holds (locks, leaderships) the client believes
it has, and the leader answers with those that are gone; later ones it pushes as they go.
So a :class:`~warden_client.hold.Hold` learns it was lost across a change of leader too.

A session ends with :meth:`Session.close` (or leaving its ``with`` block), which stops the
keepalives and closes it on the cluster, so its locks go now rather than a ttl later.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from . import _stubs
from .connection import IDEMPOTENT, ONCE, Connection
from .errors import LEADER_METADATA, Unavailable, WardenError, kind_of, metadata
from .hold import Hold, Leadership
from .types import Leader, as_bytes

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger(__name__)

ALIVE = "alive"
JEOPARDY = "jeopardy"
LOST = "lost"

# Markers a stream's reader thread and close() leave in the keepalive thread's inbox.
_STREAM_END = object()
_STOP = object()

# The margin a waiting call (acquire, campaign) gets beyond its server-side timeout.
WAIT_MARGIN = 10.0


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass
class _HoldEntry:
    """One hold's lost flag and how many guards share it (acquiring a lock the session
    holds returns the same hold: it is released with the last of its guards)."""

    guards: int = 0
    lost: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None


class Session:
    """A live session. Use it as a context manager, or call :meth:`close`."""

    def __init__(self, client: Client, session_id: int, ttl: float, sent: float):
        self._client = client
        self._connection: Connection = client._connection
        self.id = session_id
        self.ttl = ttl
        self._lock = threading.Lock()
        self._state = ALIVE
        self._lost = threading.Event()
        self._last_renewal = sent
        self._holds: dict[tuple[str, int], _HoldEntry] = {}
        self._seq = 0
        self._pending: set[int] = set()
        self._inbox: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._stopping = threading.Event()
        self._ended = False
        self._thread = threading.Thread(
            target=self._keep_alive, name=f"warden-keepalive-{session_id}", daemon=True
        )
        self._thread.start()

    # -- state -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"alive"``, ``"jeopardy"`` (renewals failing) or ``"lost"``."""
        return self._state

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Waits until the session is lost; False if ``timeout`` passed first."""
        return self._lost.wait(timeout)

    @property
    def last_renewal(self) -> float:
        """When (``time.monotonic()``) the last acknowledged renewal was sent."""
        return self._last_renewal

    def _set_state(self, state: str) -> None:
        with self._lock:
            if self._state != LOST:
                self._state = state

    def _end_here(self, reason: str) -> None:
        """Marks the session lost here, and every hold it has."""
        with self._lock:
            self._state = LOST
            holds, self._holds = self._holds, {}
        for entry in holds.values():
            entry.reason = entry.reason or reason
            entry.lost.set()
        self._lost.set()

    # -- ending ----------------------------------------------------------------------

    def close(self) -> int:
        """Ends the session now: its ephemeral nodes are deleted, its locks released and
        its leaderships resigned. Returns how many nodes went."""
        if self._ended:
            return 0
        self._ended = True
        self._stop_keepalive()
        if self.lost:
            return 0
        try:
            closed = self._connection.call(
                "Session", "Close", _stubs.session.CloseSessionRequest(session_id=self.id), ONCE
            )
        finally:
            self._end_here("session closed")
        return closed.deleted

    def abandon(self) -> None:
        """Stops the keepalives without closing: the cluster expires the session after its
        ttl, as if this client had died."""
        self._ended = True
        self._stop_keepalive()

    def _stop_keepalive(self) -> None:
        self._stopping.set()
        self._inbox.put((0, _STOP))
        self._thread.join(timeout=5)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.close()
        except WardenError as error:
            if exc is None:
                raise
            log.warning("closing session %d failed; it expires after its ttl: %s", self.id, error)

    def __repr__(self) -> str:
        return f"Session(id={self.id}, ttl={self.ttl}, state={self._state!r})"

    # -- holds -----------------------------------------------------------------------

    def _track(self, path: str, token: int) -> _HoldEntry:
        with self._lock:
            entry = self._holds.setdefault((path, token), _HoldEntry())
            entry.guards += 1
            return entry

    def _untrack(self, path: str, token: int) -> bool:
        """One guard of the hold let go; True if it was the last, so the hold is to be
        ended on the cluster."""
        with self._lock:
            entry = self._holds.get((path, token))
            if entry is None:
                return True
            entry.guards -= 1
            if entry.guards > 0:
                return False
            del self._holds[(path, token)]
            return True

    def _mark_lost(self, lost: Any) -> None:
        for item in lost:
            with self._lock:
                entry = self._holds.pop((item.path, item.token), None)
            if entry is not None:
                log.debug("hold of %s (token %d) lost: %s", item.path, item.token, item.reason)
                entry.reason = item.reason or "lost"
                entry.lost.set()

    def _held(self) -> list[Any]:
        with self._lock:
            keys = list(self._holds)
        return [_stubs.session.Hold(path=path, token=token) for path, token in keys]

    # -- request ids -----------------------------------------------------------------

    def _begin(self) -> Any:
        """The origin of a new write in this session, with a fresh request id, so a retry
        is applied once."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._pending.add(seq)
            lowest = min(self._pending)
        return _stubs.kv.Origin(
            session_id=self.id, request_id=_stubs.kv.RequestId(seq=seq, lowest_pending=lowest)
        )

    def _finish(self, origin: Any) -> None:
        with self._lock:
            self._pending.discard(origin.request_id.seq)

    # -- recipes and writes ----------------------------------------------------------

    def create(
        self,
        path: str,
        value: bytes | str = b"",
        *,
        ephemeral: bool = True,
        sequential: bool = False,
    ) -> str:
        """Creates a node in this session (ephemeral by default: it goes with the
        session). Returns its path (with the counter, for a sequential node)."""
        kind = _stubs.kv.NODE_KIND_EPHEMERAL if ephemeral else _stubs.kv.NODE_KIND_PERSISTENT
        origin = self._begin()
        request = _stubs.kv.CreateRequest(
            path=path, data=as_bytes(value), kind=kind, sequential=sequential, origin=origin
        )
        try:
            return self._connection.call("KV", "Create", request, IDEMPOTENT).path
        finally:
            self._finish(origin)

    def lock(self, path: str, timeout: float | None = None) -> Hold:
        """Acquires the exclusive lock at ``path``, waiting at most ``timeout`` seconds
        (``None``: until granted; ``0``: only if it is free now). Returns the hold, with
        its fencing token; use it in a ``with`` block to release it on exit.

        Fails with kind ``Timeout`` if not granted in time, ``AlreadyLocked`` for a lock
        held elsewhere with ``timeout=0``."""
        request = _stubs.lock.AcquireRequest(
            path=path,
            session_id=self.id,
            type=_stubs.lock.LOCK_TYPE_MUTEX,
            timeout_ms=0 if not timeout else _millis(timeout),
        )
        method = "TryAcquire" if timeout == 0 else "Acquire"
        granted = self._wait_for_grant("Lock", method, request, timeout)
        return Hold(self, path, granted.token, self._track(path, granted.token), granted.waiter)

    def campaign(
        self, name: str, value: bytes | str = b"", timeout: float | None = None
    ) -> Leadership:
        """Campaigns in the election ``name`` and waits (at most ``timeout`` seconds,
        ``None``: until leading) until this session leads. Returns the leadership, with
        its fencing token; :meth:`Leadership.resign` (or leaving its ``with`` block) ends it."""
        request = _stubs.election.CampaignRequest(
            name=name,
            session_id=self.id,
            value=as_bytes(value),
            timeout_ms=0 if timeout is None else _millis(timeout),
        )
        granted = self._wait_for_grant("Election", "Campaign", request, timeout)
        leader = Leader.from_pb(granted.leader)
        return Leadership(self, leader, self._track(name, leader.token))

    def _lost_error(self) -> WardenError:
        return WardenError(
            f"session {self.id} was lost (closed, expired, or its keepalives failed for a "
            "ttl): open a new session",
            code=grpc.StatusCode.FAILED_PRECONDITION,
            kind="SessionExpired",
        )

    def _wait_for_grant(
        self, service: str, method: str, request: Any, timeout: float | None
    ) -> Any:
        """Runs a call that waits on the server for a grant. It is not cut client-side
        (that would drop the wait); a member that fails is asked again elsewhere, and the
        call re-attaches to the same place in the queue."""
        attempt = None if timeout is None else timeout + WAIT_MARGIN
        while True:
            if self.lost:
                raise self._lost_error()
            try:
                return self._connection.call(service, method, request, IDEMPOTENT, attempt)
            except Unavailable:
                if timeout is not None:
                    raise
            except WardenError as error:
                # An earlier, broken call's cancel removed the wait this one re-attached to.
                if error.kind != "WaitCancelled" or timeout == 0:
                    raise

    def _end_hold(self, service: str, method: str, request: Any) -> None:
        """Runs a call that ends a hold (release, resign), retried on any failure: a
        retry whose first try's answer was lost finds the hold ended, which is success."""
        attempts = 0

        def one(addr: str) -> Any:
            nonlocal attempts
            attempts += 1
            stub = self._connection.stub(addr, service)
            return getattr(stub, method)(request, timeout=10.0)

        try:
            self._connection.run(one, IDEMPOTENT)
        except WardenError as error:
            if not (error.kind == "HoldEnded" and attempts > 1):
                raise

    # -- keepalive -------------------------------------------------------------------

    def _keep_alive(self) -> None:
        interval = max(self.ttl / 3, 0.05)
        stream = 0
        while not self._stopping.is_set():
            if time.monotonic() - self._last_renewal >= self.ttl:
                self._end_here("its ttl passed without a renewal")
                return
            stream += 1
            addr = self._connection.candidates()[0]
            outcome = self._serve_stream(stream, addr, interval)
            if outcome != "broken":
                return
            left = self.ttl - (time.monotonic() - self._last_renewal)
            time.sleep(max(0.0, min(0.05, left)))

    def _serve_stream(self, stream: int, addr: str, interval: float) -> str:
        """Keeps one KeepAlive stream to ``addr`` until it breaks (``"broken"``), the
        session ends (``"ended"``) or the keepalives stop (``"stopped"``)."""
        outbox: queue.Queue[Any] = queue.Queue()
        outbox.put(_stubs.session.KeepAliveRequest(session_id=self.id, held=self._held()))
        sent, waiting = time.monotonic(), True
        call = self._connection.stub(addr, "Session").KeepAlive(_drain(outbox))
        reader = threading.Thread(
            target=self._read,
            args=(call, stream),
            name=f"warden-keepalive-read-{self.id}",
            daemon=True,
        )
        reader.start()
        try:
            while True:
                try:
                    number, item = self._inbox.get(
                        timeout=max(0.0, sent + interval - time.monotonic())
                    )
                except queue.Empty:
                    if waiting:
                        self._set_state(JEOPARDY)
                        self._connection.prefer_after(addr)
                        return "broken"
                    sent, waiting = time.monotonic(), True
                    outbox.put(_stubs.session.KeepAliveRequest(session_id=self.id))
                    continue
                if item is _STOP:
                    return "stopped"
                if number != stream:
                    continue  # left by an earlier stream's reader
                if item is _STREAM_END or isinstance(item, grpc.RpcError):
                    self._stream_failed(addr, item)
                    return "broken"
                self._mark_lost(item.lost)
                if item.ended or (not item.pushed and item.ttl_ms == 0):
                    self._end_here("session ended")
                    return "ended"
                if item.pushed:
                    continue
                waiting = False
                self._last_renewal = sent
                self._set_state(ALIVE)
        finally:
            call.cancel()
            outbox.put(None)

    def _stream_failed(self, addr: str, item: Any) -> None:
        if isinstance(item, grpc.RpcError) and kind_of(item) == "NotLeader":
            hint = metadata(item).get(LEADER_METADATA, "")
            if hint and hint != addr:
                self._connection.prefer(hint)
                return
        if isinstance(item, grpc.RpcError) and kind_of(item) is None:
            self._connection.forget(addr)
        log.debug("keepalive stream of session %d to %s broke: %s", self.id, addr, item)
        self._set_state(JEOPARDY)
        self._connection.prefer_after(addr)

    def _read(self, call: Any, stream: int) -> None:
        try:
            for response in call:
                self._inbox.put((stream, response))
            self._inbox.put((stream, _STREAM_END))
        except grpc.RpcError as error:
            self._inbox.put((stream, error))


def _drain(outbox: queue.Queue[Any]) -> Iterator[Any]:
    """The request stream of a KeepAlive call: what the keepalive thread puts, until None."""
    while True:
        item = outbox.get()
        if item is None:
            return
        yield item
