"""A TCP listener on loopback that counts every connection made to it: the witness of
tests that prove a hostile value makes no request (issue 29)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator


class Listener:
    """Accepts and counts connections on ``127.0.0.1:<port>`` until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def listening() -> Iterator[Listener]:
    """A loopback listener for one test (``yield from`` it in a fixture)."""
    found = Listener()
    yield found
    found.close()
