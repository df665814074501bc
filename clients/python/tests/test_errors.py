"""Errors carry the server's message, status code and error kind; the client finds the
leader from any member and skips members that cannot be reached."""

import threading
from concurrent import futures

import grpc
import pytest

from warden_client import Client, Unavailable, WardenError, _stubs


def kind_of(call):
    with pytest.raises(WardenError) as failed:
        call()
    return failed.value


def test_errors_carry_the_servers_kind_and_message(client, prefix):
    missing = kind_of(lambda: client.get(f"{prefix}/missing"))
    assert (missing.kind, missing.code) == ("NoNode", grpc.StatusCode.NOT_FOUND)
    assert f"{prefix}/missing" in missing.message
    exists = kind_of(lambda: client.create(prefix))
    assert (exists.kind, exists.code) == ("NodeExists", grpc.StatusCode.ALREADY_EXISTS)
    assert kind_of(lambda: client.get("no-slash")).kind == "InvalidPath"
    assert kind_of(lambda: client.create(f"{prefix}/a/b")).kind == "NoParent"
    assert kind_of(lambda: client.session(ttl=0.01)).kind == "InvalidTtl"
    assert kind_of(lambda: client.delete(f"{prefix}/missing")).kind == "NoNode"


def test_any_member_leads_the_client_to_the_leader(cluster):
    leaders, followed = set(), 0
    for endpoint in cluster.endpoints:
        with Client([endpoint]) as alone:
            alone.put("/up", endpoint)
            leaders.add(alone.known_leader)
            followed += alone.known_leader != endpoint
    assert leaders <= set(cluster.endpoints), leaders
    # The members that did not lead answered "not the leader" and named it.
    assert followed >= 1


def test_a_member_that_cannot_be_reached_is_skipped(cluster, prefix):
    closed = free_port()
    with Client([f"127.0.0.1:{closed}", *cluster.endpoints]) as client:
        # The watch first: its own connection starts with the closed endpoint too.
        with client.watch(prefix) as watch:
            client.put(f"{prefix}/seen", "yes")
            event = watch.get(timeout=10)
            assert (event.kind, event.path, event.data) == ("created", f"{prefix}/seen", b"yes")
        assert client.get(prefix).data == b""
    with Client([f"127.0.0.1:{closed}"], deadline=5) as client:
        down = kind_of(lambda: client.get(prefix))
    assert isinstance(down, Unavailable) and down.kind is None
    assert "no member accepted a connection" in down.message


class NotTheLeader(_stubs.kv_grpc.KVServicer):
    """A member that is not the leader: it names the leader in `warden-leader`."""

    def __init__(self, leader):
        self.leader = leader
        self.asked = threading.Event()

    def Get(self, request, context):
        self.asked.set()
        context.set_trailing_metadata(
            (("warden-error", "NotLeader"), ("warden-leader", self.leader))
        )
        context.abort(grpc.StatusCode.UNAVAILABLE, "not the leader")


def test_a_not_the_leader_answer_is_followed(cluster, prefix):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    fake = NotTheLeader(cluster.endpoints[0])
    _stubs.kv_grpc.add_KVServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with Client([f"127.0.0.1:{port}"]) as client:
            assert client.get(prefix).data == b""
            assert fake.asked.is_set()
            assert client.known_leader in cluster.endpoints
    finally:
        server.stop(grace=None)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
