"""A real GCS emulator (`gcp-storage-emulator`) on 127.0.0.1, for tests and benchmarks."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"GCS emulator exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("GCS emulator did not start")


# The emulator's HTTP server is socketserver's, whose listen backlog is 5: with more
# connections arriving at once (our 16 reader threads) the kernel drops the extra SYNs
# and each client waits a 1 s retransmit. GCS has no such limit, so the backlog is raised.
LAUNCH = (
    "import socketserver, sys\n"
    "socketserver.TCPServer.request_queue_size = 1024\n"
    "from gcp_storage_emulator.__main__ import main\n"
    "main(sys.argv[1:])\n"
)


def start_emulator(port: int) -> subprocess.Popen:
    """Starts gcp-storage-emulator, in memory, on 127.0.0.1:port."""
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "start", "--host", "127.0.0.1", "--port", str(port)]
        + ["-q", "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port, process)
    return process


@contextlib.contextmanager
def emulator_host() -> Iterator[str]:
    """An emulator for the block, with STORAGE_EMULATOR_HOST pointing at it (then restored)."""
    port = free_port()
    process = start_emulator(port)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        yield os.environ["STORAGE_EMULATOR_HOST"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def new_bucket(prefix: str = "test") -> str:
    """Creates a fresh bucket on the configured emulator; returns its `gs://name` URI."""
    from kftransfer.components.core import gcs

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    gcs.client().create_bucket(name)
    return f"gs://{name}"
