"""An HTTP proxy in front of the GCS emulator: transient failures, or latency like real GCS."""

import collections
import contextlib
import http.client
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from devtools.local_server import LocalServer

STREAM_BYTES = 1 << 20
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Proxy(LocalServer):
    """Forwards to `target` (http://host:port), with faults or latency added.

    Args:
        target: the emulator's URL.
        fail_first: answer 503 to the first try of each request (its method and path);
            `failures` counts them.
        latency: seconds to wait before forwarding each request.
        cut_after: called with each forwarded request's method, path and body; once it
            says True, storage is gone: every later request's connection drops unanswered.

    `sent` counts the bytes of the answers' bodies by path (without the query).
    """

    def __init__(
        self,
        target: str,
        fail_first: bool = False,
        latency: float = 0.0,
        cut_after: Callable[[str, str, bytes], bool] | None = None,
    ):
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.fail_first, self.latency, self.cut_after = fail_first, latency, cut_after
        self.cut = False  # once set, every request's connection is dropped unanswered
        self.seen: set[tuple[str, str]] = set()
        self.failures = 0
        self.sent: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        super().__init__(self._handler())

    def _first_try(self, method: str, path: str) -> bool:
        if not self.fail_first:
            return False
        with self.lock:
            key = (method, path.split("?")[0])
            if key in self.seen:
                return False
            self.seen.add(key)
            self.failures += 1
            return True

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.cut:  # storage gone: the connection drops, nothing answers
                    self.close_connection = True
                    return
                if proxy._first_try(self.command, self.path):
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(proxy.latency)
                upstream = http.client.HTTPConnection(*proxy.target, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", answer.getheader("Content-Length") or "0")
                self.end_headers()
                while piece := answer.read(STREAM_BYTES):  # streamed, as GCS sends it
                    self.wfile.write(piece)
                    with proxy.lock:
                        proxy.sent[self.path.split("?")[0]] += len(piece)
                upstream.close()
                if proxy.cut_after and proxy.cut_after(self.command, self.path, body or b""):
                    proxy.cut = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

            def log_message(self, *args):
                pass

        return Handler


def _serve(target: str, latency: float, urls) -> None:
    with Proxy(target, latency=latency) as proxy:
        urls.put(proxy.url)
        threading.Event().wait()


@contextlib.contextmanager
def latency_proxy(target: str, latency: float) -> Iterator[str]:
    """A latency-only `Proxy` in its own process (off the caller's GIL); yields its URL.

    Benchmarks use this: real GCS spends none of the reader's CPU relaying bytes.
    """
    context = multiprocessing.get_context("spawn")
    urls = context.Queue()
    process = context.Process(target=_serve, args=(target, latency, urls), daemon=True)
    process.start()
    try:
        yield urls.get(timeout=60)
    finally:
        process.terminate()
        process.join()
