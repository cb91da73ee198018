"""Helpers shared by the benchmark scripts (not a benchmark itself)."""

import contextlib
import os
import subprocess
import sys
import time
import uuid

from tests.conftest import free_port, start_emulator


@contextlib.contextmanager
def gcs_emulator():
    """Runs a GCS emulator on 127.0.0.1 for the block; yields a fresh bucket's gs:// URI."""
    from kftransfer.components.core import gcs

    port = free_port()
    process = start_emulator(port)
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        gcs.client().create_bucket(name)
        yield f"gs://{name}"
    finally:
        process.terminate()
        process.wait()


def timed(fn, *args, **kwargs):
    """Returns (seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def machine() -> str:
    """One line naming the machine the numbers came from."""
    cpus = os.cpu_count()
    return f"python {sys.version.split()[0]}, {cpus} CPUs, {subprocess.getoutput('uname -m')}"
