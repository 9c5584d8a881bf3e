"""A TCP proxy in front of the real authzd that reads each HTTP/1.1 request and either forwards it
or answers with a fault of the test's choosing, counting what it saw. Only for the tests."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlsplit


@dataclass
class Fault:
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"error":{"code":"unavailable","message":"injected by the test proxy"}}'
    path: Optional[str] = None  # only requests whose path starts with it
    silent: bool = False  # never answer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    faulted: bool


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def fail(self, n: int, status: int = 503, **kw: object) -> None:
        """Answer the next n matching requests with status (instead of forwarding them)."""
        with self._lock:
            self.faults.extend(Fault(status=status, **kw) for _ in range(n))  # type: ignore[arg-type]

    def requests(self, path: Optional[str] = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if path is None or s.path.startswith(path)]

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _next_fault(self, path: str) -> Optional[Fault]:
        with self._lock:
            for i, f in enumerate(self.faults):
                if f.path is None or path.startswith(f.path):
                    return self.faults.pop(i)
        return None

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                req, buf = _read_message(conn, buf)
                if req is None:
                    return
                head, body = req
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                fault = self._next_fault(target)
                with self._lock:
                    self.seen.append(Seen(method, target, headers, fault is not None))
                if fault is not None and fault.silent:
                    self._closed.wait()
                    return
                if fault is not None:
                    hdrs = {"Content-Type": "application/json", "Content-Length": str(len(fault.body)),
                            **fault.headers}
                    reason = {200: "OK", 429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable",
                              504: "Gateway Timeout"}.get(fault.status, "Fault")
                    out = f"HTTP/1.1 {fault.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
                    conn.sendall(out.encode("latin-1") + b"\r\n" + fault.body)
                    continue
                conn.sendall(self._forward(lines, body))
        except OSError:
            return
        finally:
            conn.close()

    def _forward(self, lines: list[str], body: bytes) -> bytes:
        """One request on a fresh upstream connection, as HTTP/1.0 so that authzd answers without
        chunking and closes; the answer goes back with a Content-Length."""
        method, target, _ = lines[0].split(" ", 2)
        kept = [ln for ln in lines[1:] if ln and not ln.lower().startswith("connection:")]
        head = "\r\n".join([f"{method} {target} HTTP/1.0", *kept]) + "\r\n\r\n"
        data = b""
        with socket.create_connection(self.upstream, timeout=30) as up:
            up.sendall(head.encode("latin-1") + body)
            while chunk := up.recv(65536):
                data += chunk
        rhead, sep, rbody = data.partition(b"\r\n\r\n")
        if not sep:
            raise OSError("upstream closed without an answer")
        rlines = rhead.decode("latin-1").split("\r\n")
        status = "HTTP/1.1 " + rlines[0].split(" ", 1)[1]
        drop = ("connection:", "content-length:", "transfer-encoding:", "keep-alive:")
        kept = [ln for ln in rlines[1:] if ln and not ln.lower().startswith(drop)]
        return ("\r\n".join([status, *kept, f"Content-Length: {len(rbody)}"]) + "\r\n\r\n").encode("latin-1") + rbody


def _read_message(conn: socket.socket, buf: bytes) -> tuple[Optional[tuple[bytes, bytes]], bytes]:
    """Reads one HTTP message with a Content-Length body (or none); None at a clean end."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
        if k.strip().lower() == b"transfer-encoding":
            raise OSError("chunked bodies are not supported by the test proxy")
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return (head, rest[:length]), rest[length:]
