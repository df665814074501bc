"""The client: plain reads and writes, and the way in to sessions, watches and elections.

One object per program is enough: it is safe to share between threads, keeps one channel
per member, and follows the leader (``connection.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import grpc

from . import _stubs
from .connection import IDEMPOTENT, ONCE, Connection
from .errors import WardenError
from .session import Session
from .types import Leader, Node, Stat, Waiter, as_bytes
from .watch import Watch

# How often put() goes round "not there, so create" / "there now, so set" before saying so.
PUT_ROUNDS = 10


class Client:
    """A client of a warden cluster.

    ``endpoints`` are the members' client addresses, ``host:port`` each, as a list or one
    comma-separated string; they are tried in turn. ``deadline`` is how long one call
    goes round the members before it fails with :class:`~warden_client.Unavailable`.
    """

    def __init__(
        self, endpoints: str | Iterable[str] = "127.0.0.1:7400", *, deadline: float = 10.0
    ):
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        self._connection = Connection(list(endpoints), deadline)

    @property
    def endpoints(self) -> list[str]:
        return list(self._connection.endpoints)

    @property
    def known_leader(self) -> str | None:
        """The member last known to lead (a leader hint followed, or the member that
        served a plain write), if any."""
        return self._connection.leader

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    # -- keys ------------------------------------------------------------------------

    def get(self, path: str, *, serializable: bool = False) -> Node:
        """Reads a node (linearizable unless ``serializable``); kind ``NoNode`` if missing."""
        request = _stubs.kv.GetRequest(path=path, serializable=serializable)
        r = self._connection.call("KV", "Get", request, IDEMPOTENT)
        return Node(r.data, Stat.from_pb(r.stat), r.header.revision)

    def children(self, path: str, *, serializable: bool = False) -> list[str]:
        """The names of a node's children, sorted (read page by page)."""
        names: list[str] = []
        after = ""
        while True:
            request = _stubs.kv.ChildrenRequest(
                path=path, serializable=serializable, start_after=after
            )
            page = self._connection.call("KV", "Children", request, IDEMPOTENT)
            names.extend(c.name for c in page.children)
            if not page.more or not page.children:
                return names
            after = page.children[-1].name

    def create(self, path: str, value: bytes | str = b"", *, container: bool = False) -> str:
        """Creates a persistent (or container) node; kind ``NodeExists`` if it exists,
        ``NoParent`` if its parent does not. Ephemeral nodes belong to a session:
        :meth:`Session.create`."""
        kind = _stubs.kv.NODE_KIND_CONTAINER if container else _stubs.kv.NODE_KIND_PERSISTENT
        request = _stubs.kv.CreateRequest(path=path, data=as_bytes(value), kind=kind)
        return self._connection.call("KV", "Create", request, ONCE).path

    def set(self, path: str, value: bytes | str, *, expected_version: int | None = None) -> Stat:
        """Sets an existing node's value (only at ``expected_version``, if given)."""
        request = _stubs.kv.SetRequest(path=path, data=as_bytes(value))
        if expected_version is not None:
            request.expected_version = expected_version
        return Stat.from_pb(self._connection.call("KV", "Set", request, ONCE).stat)

    def put(self, path: str, value: bytes | str) -> Stat:
        """Creates the node or sets its value. Its parent must exist."""
        for _ in range(PUT_ROUNDS):
            try:
                return self.set(path, value)
            except WardenError as error:
                if error.code != grpc.StatusCode.NOT_FOUND:
                    raise
            try:
                self.create(path, value)
                return self.get(path).stat
            except WardenError as error:
                if error.code != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        raise WardenError(f"{path!r} kept being created and deleted by others; put gave up")

    def delete(
        self, path: str, *, recursive: bool = False, expected_version: int | None = None
    ) -> int:
        """Deletes a node (and its descendants if ``recursive``); returns how many went."""
        request = _stubs.kv.DeleteRequest(path=path, recursive=recursive)
        if expected_version is not None:
            request.expected_version = expected_version
        return self._connection.call("KV", "Delete", request, ONCE).deleted

    # -- sessions, watches, recipes --------------------------------------------------

    def session(self, ttl: float = 10.0) -> Session:
        """Opens a session with a time to live of ``ttl`` seconds (at least 1), renewed in
        the background until it is closed. Use it as a context manager."""
        sent = time.monotonic()
        request = _stubs.session.OpenSessionRequest(ttl_ms=max(1, round(ttl * 1000)))
        opened = self._connection.call("Session", "Open", request, ONCE)
        return Session(self, opened.session_id, opened.ttl_ms / 1000, sent)

    def watch(self, path: str, *, scope: str = "prefix", start_revision: int = 0) -> Watch:
        """Watches ``path`` and everything under it (``scope="key"``: the path alone;
        ``"glob"``: paths matching the glob), from ``start_revision`` (0: from now on).
        Returns an iterator of :class:`~warden_client.Event` once the watch stands."""
        return Watch(self._connection.apart(), path, scope, start_revision)

    def leader(self, name: str, *, serializable: bool = False) -> Leader | None:
        """Who leads the election ``name``; None if nobody does."""
        request = _stubs.election.LeaderRequest(name=name, serializable=serializable)
        try:
            r = self._connection.call("Election", "Leader", request, IDEMPOTENT)
        except WardenError as error:
            if error.kind == "NoLeader":
                return None
            raise
        return Leader.from_pb(r.leader)

    def lock_status(self, path: str) -> list[Waiter]:
        """The queue of the lock at ``path``: holders first, then waiters, in order."""
        r = self._connection.call(
            "Lock", "Status", _stubs.lock.LockStatusRequest(path=path), IDEMPOTENT
        )
        return [
            Waiter(w.session_id, w.mode, w.token if w.HasField("token") else None)
            for w in r.waiters
        ]
