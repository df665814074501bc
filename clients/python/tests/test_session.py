"""Sessions: the keepalive thread keeps a session alive past its ttl; without it, the
session expires and its ephemeral node goes with it."""

import time

import pytest
from conftest import wait_until

from warden_client import ALIVE, LOST, WardenError

TTL = 1.0


def test_keepalive_keeps_a_session_past_its_ttl(client, prefix):
    with client.session(ttl=TTL) as session:
        assert session.ttl == TTL
        node = session.create(f"{prefix}/alive", "here")
        # Four ttls: the session lives only if it was renewed all along.
        time.sleep(4 * TTL)
        assert session.state == ALIVE
        assert client.get(node).stat.ephemeral_owner == session.id
        assert time.monotonic() - session.last_renewal < TTL
    assert session.state == LOST
    # Closing it deleted its ephemeral node at once.
    with pytest.raises(WardenError) as missing:
        client.get(node)
    assert missing.value.kind == "NoNode"


def test_a_session_whose_keepalives_stop_expires(client, prefix):
    session = client.session(ttl=TTL)
    node = session.create(f"{prefix}/gone")
    session.abandon()

    def expired():
        try:
            client.get(node)
        except WardenError as error:
            assert error.kind == "NoNode", error
            return True
        return False

    # The control for the test above: one ttl without renewals ends the session.
    wait_until(expired, 20, "the abandoned session's ephemeral node to go")
