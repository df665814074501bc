"""A Python client of warden, over its gRPC API (stubs generated from the repository's
``proto/`` by ``python -m warden_client.generate``).

    from warden_client import Client

    with Client("127.0.0.1:7400") as client, client.session(ttl=10) as session:
        with session.lock("/locks/report", timeout=30) as hold:
            print("holding with fencing token", hold.token)

The recipes run on the server, so each is one call here: a session renewed by a
background thread, locks and leaderships with fencing tokens, watches as iterators.
"""

# The names below are imported on first use (PEP 562), not here: `python -m
# warden_client.generate` runs this file before it makes the stubs that `client` needs.
_HOME = {
    "ALIVE": ".session",
    "JEOPARDY": ".session",
    "LOST": ".session",
    "Client": ".client",
    "Event": ".watch",
    "Hold": ".hold",
    "Leader": ".types",
    "Leadership": ".hold",
    "Node": ".types",
    "OutcomeUnknown": ".errors",
    "Session": ".session",
    "Stat": ".types",
    "Unavailable": ".errors",
    "Waiter": ".types",
    "WardenError": ".errors",
    "Watch": ".watch",
}


def __getattr__(name):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


__all__ = [  # noqa: F822 - each name is served by __getattr__
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
