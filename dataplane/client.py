"""Talk to a running forwarder's control socket (docs/control.md): one JSON request per
line, one JSON reply per line."""
from __future__ import annotations

import json
import socket


class ControlError(RuntimeError):
    pass


def request(path: str, req: dict, timeout: float = 30.0) -> dict:
    """Send one request, return its `result`; ControlError with the server's message."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except OSError as e:
            raise ControlError(f"control socket {path}: {e.strerror or e} (is `dataplane "
                               "run` running? --socket PATH names another)") from None
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    if not buf:
        raise ControlError(f"control socket {path}: closed without a reply")
    reply = json.loads(buf.split(b"\n", 1)[0])
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "error"))
    return reply["result"]
