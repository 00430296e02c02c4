"""Print a free TCP port on 127.0.0.1 (with ``--pair``, one whose next port is free too:
Kafka's controller listens there). Used by scripts/test.sh so that every run has servers
of its own; the port is free when printed (a race with another process is possible but
the server then fails to start, loudly)."""

from __future__ import annotations

import socket
import sys


def free(pair: bool) -> int:
    for _ in range(200):  # bounded
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair:
            return port
        if port < 65535:
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise SystemExit("free_port: no free port found")


if __name__ == "__main__":
    print(free("--pair" in sys.argv[1:]))
