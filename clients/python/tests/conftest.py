"""A real three-member cluster for the tests: ``$WARDEN_BIN dev --base-port P``.

``WARDEN_BIN`` names the warden binary (``cargo build -p warden --bin warden`` makes
``target/debug/warden``); the Rust test ``crates/warden/tests/it/python_client.rs`` sets
it, and ``WARDEN_BASE_PORT`` to ports it reserved. Without ``WARDEN_BIN`` the tests are
skipped, saying so, except under ``CI=true``, where that is a failure.

``warden dev`` gives member i (from 1) the client port base + 10·(i-1), its peer port +1
and its HTTP port +2: three members take the 23 ports from base on. The cluster is
stopped at the end with SIGINT (it deletes its data), then killed if it lingers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warden_client import generate

# Stubs made from the protos as they are now, before the client imports them.
generate.ensure()

from warden_client import Client, WardenError

MEMBERS = 3
PORT_SPAN = 10 * (MEMBERS - 1) + 3
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def in_ci() -> bool:
    return os.environ.get("CI") in ("true", "1")


def free_base() -> int:
    """A base port with the 23 ports from it free, above the kernel's ephemeral range."""
    low, high = 61000, 65535 - PORT_SPAN
    start = low + (os.getpid() * 37) % (high - low)
    for i in range(0, high - low, PORT_SPAN):
        base = low + (start - low + i) % (high - low)
        if all(port_free(p) for p in range(base, base + PORT_SPAN)):
            return base
    raise RuntimeError(f"no {PORT_SPAN} free ports in a row between {low} and {high}")


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):
    """Polls ``condition`` until it returns something true, for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


class Cluster:
    def __init__(self, binary: str, base: int, log: Path):
        self.endpoints = [f"127.0.0.1:{base + 10 * i}" for i in range(MEMBERS)]
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [binary, "dev", "--nodes", str(MEMBERS), "--base-port", str(base)],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_serving(self) -> None:
        """Waits until the cluster takes a write, for at most START_TIMEOUT."""
        deadline = time.monotonic() + START_TIMEOUT
        with Client(self.endpoints, deadline=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"warden dev exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    client.put("/up", "1")
                    return
                except WardenError as error:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the cluster did not serve within {START_TIMEOUT} s ({error}):\n"
                            f"{self.log_tail()}"
                        ) from error
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._log_file.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    binary = os.environ.get("WARDEN_BIN")
    if not binary:
        message = (
            "WARDEN_BIN is not set: build the server (cargo build -p warden --bin warden) "
            "and set WARDEN_BIN=target/debug/warden"
        )
        if in_ci():
            pytest.fail(message + " (CI=true makes this a failure)")
        pytest.skip(message)
    base = int(os.environ.get("WARDEN_BASE_PORT") or free_base())
    cluster = Cluster(binary, base, tmp_path_factory.mktemp("warden") / "dev.log")
    try:
        cluster.wait_serving()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def client(cluster):
    with Client(cluster.endpoints) as client:
        yield client


@pytest.fixture
def prefix(client):
    """A fresh top-level path for one test, created empty."""
    path = f"/py-{uuid.uuid4().hex[:12]}"
    client.put(path, "")
    return path
