"""The plain values the client hands out: a node's metadata, a node, an election's leader,
a lock's queue. Converted once from the generated messages, so callers see Python types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stat:
    """A node's metadata (ZooKeeper's Stat with etcd's revision names)."""

    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    cversion: int = 0
    ephemeral_owner: int = 0
    num_children: int = 0
    ctime_ms: int = 0
    mtime_ms: int = 0
    data_length: int = 0

    @classmethod
    def from_pb(cls, stat: Any) -> Stat:
        return cls(
            stat.create_revision,
            stat.mod_revision,
            stat.version,
            stat.cversion,
            stat.ephemeral_owner,
            stat.num_children,
            stat.ctime_ms,
            stat.mtime_ms,
            stat.data_length,
        )


@dataclass(frozen=True)
class Node:
    """A node's value and metadata, read at ``revision``."""

    data: bytes
    stat: Stat
    revision: int


@dataclass(frozen=True)
class Leader:
    """Who leads an election, with the token it leads with."""

    name: str
    value: bytes
    token: int
    session_id: int
    identity: str
    candidate: str

    @classmethod
    def from_pb(cls, leader: Any) -> Leader:
        return cls(
            leader.name,
            leader.value,
            leader.token,
            leader.session_id,
            leader.identity,
            leader.candidate,
        )


@dataclass(frozen=True)
class Waiter:
    """A session in a lock's queue: a holder (``token`` set) or a waiter."""

    session_id: int
    mode: str
    token: int | None

    @property
    def holds(self) -> bool:
        return self.token is not None


def as_bytes(value: bytes | bytearray | memoryview | str) -> bytes:
    """A value as bytes: text is encoded as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a value must be bytes or str, not {type(value).__name__}")
