"""A watch as an iterator of events, that resumes on another member when one fails.

A background thread reads the Watch stream into a queue, so the application iterates
(``for event in watch``) or waits with a bound (:meth:`Watch.get`). The member's first
message says from which revision on events are due, so :func:`Client.watch` returns once
the watch stands: every change committed after it returned is delivered.

Events arrive in revision order, each revision once. When the stream breaks (or the
member cancels a slow watcher), the thread starts again on the next member from the
revision after the last one delivered, as the Rust client does
(``crates/warden-client/src/watch.rs``). A revision too large for one message comes in
parts (``fragment``) and is handed out once its last part is in; after a break
mid-revision the member sends it whole again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from . import _stubs
from .connection import Connection
from .errors import Unavailable, WardenError, from_rpc, kind_of
from .types import Stat

log = logging.getLogger(__name__)

SCOPES = {
    "key": _stubs.watch.WATCH_SCOPE_KEY,
    "prefix": _stubs.watch.WATCH_SCOPE_PREFIX,
    "glob": _stubs.watch.WATCH_SCOPE_GLOB,
}

KINDS = {
    _stubs.watch.EVENT_KIND_CREATED: "created",
    _stubs.watch.EVENT_KIND_DATA: "data",
    _stubs.watch.EVENT_KIND_DELETED: "deleted",
    _stubs.watch.EVENT_KIND_CHILDREN: "children",
}

_END = object()


@dataclass(frozen=True)
class Event:
    """One change: ``kind`` is ``"created"``, ``"data"``, ``"deleted"`` or ``"children"``
    (a child was created or deleted); ``data`` the new value (created and data events)."""

    revision: int
    kind: str
    path: str
    data: bytes | None
    stat: Stat
    owner: str = ""

    @classmethod
    def from_pb(cls, event: Any) -> Event:
        kind = KINDS.get(event.kind)
        if kind is None:
            raise WardenError(
                f"an event of kind {event.kind} this client does not know; upgrade it"
            )
        data = event.data if event.HasField("data") else None
        return cls(event.revision, kind, event.path, data, Stat.from_pb(event.stat), event.owner)


class Watch:
    """A running watch: iterate it for events, or :meth:`get` one with a timeout. Close it
    (or leave its ``with`` block) to stop it."""

    def __init__(self, connection: Connection, path: str, scope: str, start_revision: int):
        if scope not in SCOPES:
            raise ValueError(f"watch scope {scope!r} is none of {', '.join(SCOPES)}")
        self.path = path
        self._connection = connection
        self._scope = SCOPES[scope]
        self._next = start_revision
        self._events: queue.Queue[Any] = queue.Queue()
        self._closed = threading.Event()
        self._standing = threading.Event()
        self._call: Any = None
        self._received = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name=f"warden-watch-{path}", daemon=True)
        self._thread.start()
        if not self._standing.wait(connection.deadline + 1):
            self.close()
            raise Unavailable(f"the watch of {path!r} did not start within {connection.deadline} s")
        if self._events.qsize() and isinstance(self._events.queue[0], BaseException):
            error = self._events.get()
            self.close()
            raise error

    @property
    def revision(self) -> int:
        """Every event up to this revision has been delivered (to the queue)."""
        return self._next - 1

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return self._take(None)

    def get(self, timeout: float) -> Event:
        """The next event; ``TimeoutError`` if none comes within ``timeout`` seconds."""
        return self._take(timeout)

    def _take(self, timeout: float | None) -> Event:
        if self._done:
            raise StopIteration
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no event on {self.path!r} within {timeout} s") from None
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self) -> None:
        self._closed.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=5)
        self._connection.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def _run(self) -> None:
        broken_since: float | None = None
        while not self._closed.is_set():
            addr = self._connection.candidates()[0]
            request = _stubs.watch.WatchRequest(
                path=self.path, scope=self._scope, start_revision=self._next
            )
            self._received = False
            try:
                self._call = self._connection.stub(addr, "Watch").Watch(request)
                self._read(self._call)
                reason = "the member cancelled the watch"
            except grpc.RpcError as error:
                if self._closed.is_set():
                    break
                if kind_of(error) is not None and error.code() != grpc.StatusCode.UNAVAILABLE:
                    # A refusal every member would make: a bad path, history compacted.
                    self._fail(from_rpc(error))
                    return
                reason = error.details() or str(error.code())
                self._connection.forget(addr)
            except WardenError as error:
                self._fail(error)
                return
            if self._closed.is_set():
                break
            now = time.monotonic()
            if self._received:
                broken_since = None  # that stream stood: a new break starts the count
            broken_since = broken_since or now
            if now - broken_since > self._connection.deadline:
                self._fail(
                    Unavailable(
                        f"the watch of {self.path!r} broke and no member took it up: {reason}"
                    )
                )
                return
            log.debug(
                "watch of %s on %s broke (%s); resuming from %d",
                self.path,
                addr,
                reason,
                self._next,
            )
            self._connection.prefer_after(addr)
            time.sleep(0.05)
        self._events.put(_END)

    def _read(self, call: Any) -> None:
        parts: list[Any] = []
        for response in call:
            self._received = True
            self._standing.set()
            if response.canceled:
                log.debug("watch of %s cancelled: %s", self.path, response.cancel_reason)
                return
            parts.extend(response.events)
            if response.fragment:
                continue
            for event in parts:
                self._events.put(Event.from_pb(event))
            parts = []
            # Every event up to the header's revision has been delivered.
            self._next = max(self._next, response.header.revision + 1)

    def _fail(self, error: WardenError) -> None:
        self._events.put(error)
        self._events.put(_END)
        self._standing.set()
