"""Elections: one leader at a time; the next candidate leads after a resign, with a
larger token."""

import threading

from conftest import wait_until

from warden_client import Leader

WAIT = 20.0


def test_one_leader_and_the_next_takes_over_after_resign(client, prefix):
    name = f"{prefix}/election"
    with client.session(ttl=5) as one, client.session(ttl=5) as two:
        first = one.campaign(name, "one", timeout=WAIT)
        assert client.leader(name) == Leader(name, b"one", first.token, one.id, "", first.candidate)

        result = {}

        def campaign():
            try:
                result["leadership"] = two.campaign(name, "two", timeout=WAIT)
            except Exception as error:  # noqa: BLE001 - reported by the test
                result["error"] = error

        thread = threading.Thread(target=campaign, daemon=True)
        thread.start()
        wait_until(lambda: len(client.children(name)) == 2, 10, "the second candidate to queue")
        assert thread.is_alive() and not result
        assert client.leader(name).session_id == one.id

        first.resign()
        thread.join(WAIT + 5)
        assert not thread.is_alive(), "the second candidate never led"
        assert "error" not in result, result
        second = result["leadership"]
        assert second.token > first.token
        assert client.leader(name) == Leader(
            name, b"two", second.token, two.id, "", second.candidate
        )

        with second:
            pass  # leaving the block resigns
        assert client.leader(name) is None
