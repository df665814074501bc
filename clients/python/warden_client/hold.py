"""Holds a session has: a lock's hold and an election's leadership, each with its token.

A hold is a (path, token) pair owned by a session, whatever recipe made it: the session's
keepalive lists it, and the cluster reports its loss (an operator's revoke, the session's
end) on the same stream, so both kinds learn of a loss the same way (:attr:`Hold.lost`).

The token is the fencing token: the revision at which the hold was granted, strictly
increasing per lock or election. Pass it to whatever the hold protects, so that a
resource can refuse a deposed holder's late writes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import _stubs
from .errors import WardenError

if TYPE_CHECKING:
    from .session import Session, _HoldEntry
    from .types import Leader

log = logging.getLogger(__name__)


class Hold:
    """A held lock. Released by :meth:`release`, or on leaving its ``with`` block (also
    when the block raises)."""

    def __init__(
        self, session: Session, path: str, token: int, entry: _HoldEntry, waiter: str = ""
    ):
        self.session = session
        self.path = path
        self.token = token
        self.waiter = waiter
        self._entry = entry
        self._let_go = False

    @property
    def lost(self) -> bool:
        """Whether the hold is gone without a release here: revoked, or its session ended."""
        return self._entry.lost.is_set() or self.session.lost

    @property
    def lost_reason(self) -> str | None:
        if self._entry.lost.is_set():
            return self._entry.reason
        return "session lost" if self.session.lost else None

    @property
    def released(self) -> bool:
        return self._let_go

    def release(self) -> None:
        """Ends the hold on the cluster (once its last guard lets go; a hold already
        reported lost has nothing to end). Releasing twice does nothing."""
        if self._let_go:
            return
        self._let_go = True
        last = self.session._untrack(self.path, self.token)
        if not last or self.lost:
            return
        self._end()

    def _end(self) -> None:
        request = _stubs.lock.ReleaseRequest(
            path=self.path, session_id=self.session.id, token=self.token
        )
        self.session._end_hold("Lock", "Release", request)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.release()
        except WardenError as error:
            if exc is None:
                raise
            # The block's own exception says more; the hold goes with the session anyway.
            log.warning("releasing %s (token %d) failed: %s", self.path, self.token, error)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, token={self.token}, session={self.session.id})"


class Leadership(Hold):
    """This session's leadership of an election, with its fencing token. Ended by
    :meth:`resign`, or on leaving its ``with`` block."""

    def __init__(self, session: Session, leader: Leader, entry: _HoldEntry):
        super().__init__(session, leader.name, leader.token, entry, leader.candidate)
        self.name = leader.name
        self.value = leader.value
        self.candidate = leader.candidate

    def resign(self) -> None:
        """Stops leading: the next candidate leads."""
        self.release()

    def _end(self) -> None:
        request = _stubs.election.ResignRequest(
            name=self.name, session_id=self.session.id, token=self.token
        )
        self.session._end_hold("Election", "Resign", request)
