"""Run by qemu for each guest connection to 169.254.169.254:80: pumps it to the stand-in server.

qemu's ``guestfwd=...-cmd:`` connects a new process's stdin and stdout to each TCP connection
the guest opens to that address; this process connects to the metadata server on 127.0.0.1 and
copies bytes both ways until both sides are done. Usage: ``python -m vdcmanage.bootcheck.relay PORT``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import sys

CHUNK = 65536
IDLE_TIMEOUT_S = 30


def pump(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as server:
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
        selector = selectors.DefaultSelector()
        selector.register(stdin, selectors.EVENT_READ, "guest")
        selector.register(server, selectors.EVENT_READ, "server")
        open_sides = {"guest", "server"}
        while open_sides:
            events = selector.select(IDLE_TIMEOUT_S)
            if not events:
                return
            for key, _mask in events:
                if key.data == "guest":
                    data = os.read(stdin, CHUNK)
                    if not data:
                        selector.unregister(stdin)
                        open_sides.discard("guest")
                        with contextlib.suppress(OSError):
                            server.shutdown(socket.SHUT_WR)
                        continue
                    server.sendall(data)
                else:
                    data = server.recv(CHUNK)
                    if not data:
                        selector.unregister(server)
                        open_sides.discard("server")
                        return  # the server answered and closed: so does the guest's connection
                    os.write(stdout, data)


def main() -> int:
    try:
        pump(int(sys.argv[1]))
    except (OSError, ValueError, IndexError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
