"""Locks: exclusion between sessions, strictly increasing fencing tokens, release on
leaving a ``with`` block however it is left, and timeouts that leave no wait behind."""

import itertools
import threading

import pytest
from conftest import wait_until

from warden_client import WardenError

WAIT = 20.0


def acquire_in_thread(session, path):
    """Starts ``session.lock(path)`` in a thread; returns the thread and its result."""
    result = {}

    def run():
        try:
            result["hold"] = session.lock(path, timeout=WAIT)
        except Exception as error:  # noqa: BLE001 - reported by the test
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def queue_of(client, path):
    return [(w.session_id, w.token is not None) for w in client.lock_status(path)]


def test_the_second_session_waits_until_the_first_releases(client, prefix):
    path = f"{prefix}/lock"
    tokens = []
    with client.session(ttl=5) as first, client.session(ttl=5) as second:
        for _ in range(3):
            held = first.lock(path, timeout=WAIT)
            tokens.append(held.token)
            thread, result = acquire_in_thread(second, path)
            # The second session queues behind the first, and is not granted.
            wait_until(
                lambda: queue_of(client, path) == [(first.id, True), (second.id, False)],
                10,
                "the second session to queue behind the first",
            )
            assert thread.is_alive() and not result
            held.release()
            thread.join(WAIT + 5)
            assert not thread.is_alive(), "the second session was not granted the lock"
            assert "error" not in result, result
            taken = result["hold"]
            assert queue_of(client, path) == [(second.id, True)]
            assert taken.token > held.token
            tokens.append(taken.token)
            taken.release()
    assert all(a < b for a, b in itertools.pairwise(tokens)), tokens


def test_a_lock_is_released_when_its_block_raises(client, prefix):
    path = f"{prefix}/lock"
    with client.session(ttl=5) as first, client.session(ttl=5) as second:
        with pytest.raises(RuntimeError, match="boom"):
            with first.lock(path, timeout=WAIT) as hold:
                assert queue_of(client, path) == [(first.id, True)]
                raise RuntimeError("boom")
        assert hold.released and not hold.lost
        # Free now: a try (timeout=0) gets it without waiting.
        with second.lock(path, timeout=0) as next_hold:
            assert next_hold.token > hold.token
            assert queue_of(client, path) == [(second.id, True)]


def test_a_timed_out_or_refused_acquire_leaves_no_wait(client, prefix):
    path = f"{prefix}/lock"
    with client.session(ttl=5) as first, client.session(ttl=5) as second:
        with first.lock(path, timeout=WAIT):
            with pytest.raises(WardenError) as timed_out:
                second.lock(path, timeout=0.3)
            assert timed_out.value.kind == "Timeout", timed_out.value
            with pytest.raises(WardenError) as refused:
                second.lock(path, timeout=0)
            assert refused.value.kind == "AlreadyLocked", refused.value
            assert queue_of(client, path) == [(first.id, True)]


def test_a_closed_session_loses_its_hold(client, prefix):
    path = f"{prefix}/lock"
    with client.session(ttl=5) as other:
        session = client.session(ttl=5)
        hold = session.lock(path, timeout=WAIT)
        session.close()
        assert hold.lost and hold.lost_reason == "session closed"
        hold.release()  # nothing left to release: no error
        with other.lock(path, timeout=0) as taken:
            assert taken.token > hold.token
