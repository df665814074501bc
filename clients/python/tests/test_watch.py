"""Watches: the changes under a prefix, in revision order, each once."""

import itertools

import pytest

from warden_client import WardenError


def test_a_watch_sees_puts_in_order(client, prefix):
    with client.watch(prefix) as watch:
        written = []
        for i in range(6):
            path = f"{prefix}/k{i % 2}"
            value = f"v{i}".encode()
            written.append((path, value, client.put(path, value).mod_revision))
        client.delete(f"{prefix}/k0")
        seen = []
        while len(seen) < len(written) + 1:
            event = watch.get(timeout=10)
            if event.kind != "children":  # the prefix's own child count changing
                seen.append(event)
    assert [(e.path, e.data, e.revision) for e in seen[:-1]] == written
    assert [e.kind for e in seen] == ["created", "created"] + ["data"] * 4 + ["deleted"]
    assert seen[-1].path == f"{prefix}/k0" and seen[-1].data is None
    revisions = [e.revision for e in seen]
    assert all(a < b for a, b in itertools.pairwise(revisions)), revisions


def test_a_watch_from_a_past_revision_replays_it(client, prefix):
    first = client.put(f"{prefix}/a", "1").mod_revision
    client.put(f"{prefix}/a", "2")
    with client.watch(f"{prefix}/a", scope="key", start_revision=first) as watch:
        assert [(e.kind, e.data) for e in (watch.get(10), watch.get(10))] == [
            ("created", b"1"),
            ("data", b"2"),
        ]
        with pytest.raises(TimeoutError):
            watch.get(timeout=0.3)


def test_a_watch_the_member_refuses_raises_its_kind(client):
    with pytest.raises(WardenError) as refused:
        client.watch("no-slash")
    assert refused.value.kind == "InvalidPath", refused.value
