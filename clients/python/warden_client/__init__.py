"""A Python client of warden, over its gRPC API (stubs generated from the repository's
``proto/`` by ``python -m warden_client.generate``).

    from warden_client import Client

    with Client("127.0.0.1:7400") as client, client.session(ttl=10) as session:
        with session.lock("/locks/report", timeout=30) as hold:
            print("holding with fencing token", hold.token)

The recipes run on the server, so each is one call here: a session renewed by a
background thread, locks and leaderships with fencing tokens, watches as iterators.
"""

from .client import Client
from .errors import OutcomeUnknown, Unavailable, WardenError
from .hold import Hold, Leadership
from .session import ALIVE, JEOPARDY, LOST, Session
from .types import Leader, Node, Stat, Waiter
from .watch import Event, Watch

__all__ = [
    "ALIVE",
    "JEOPARDY",
    "LOST",
    "Client",
    "Event",
    "Hold",
    "Leader",
    "Leadership",
    "Node",
    "OutcomeUnknown",
    "Session",
    "Stat",
    "Unavailable",
    "Waiter",
    "WardenError",
    "Watch",
]
