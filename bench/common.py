"""Helpers shared by the benchmark scripts (not a benchmark itself)."""

import contextlib
import json
import os
import subprocess
import sys
import time

from devtools.emulator import emulator_host, new_bucket


@contextlib.contextmanager
def gcs_emulator():
    """Runs a GCS emulator on 127.0.0.1 for the block; yields a fresh bucket's gs:// URI."""
    with emulator_host():
        yield new_bucket("bench")


def timed(fn, *args, **kwargs):
    """Returns (seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def peak_rss_of(code: str, *argv: str) -> int:
    """Peak RSS (bytes) of `code` run in a fresh Python process with `argv`.

    Read from the child's own `VmHWM` (/proc/self/status), not `getrusage`: Linux carries
    `ru_maxrss` across `execve`, so a child of a large benchmark process would report the
    parent's peak whatever it did itself.
    """
    report = (
        "\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    command = [sys.executable, "-c", code + report, *argv]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]) * 1024


def print_ratios(header: str, results: dict[str, tuple[float, str]], width: int = 58) -> None:
    """The bench's header line, one line per ratio with its detail, then all as one JSON line."""
    print(header)
    for name, (ratio, detail) in results.items():
        print(f"  {name:<{width}} {ratio:6.2f}   ({detail})")
    print(json.dumps({name: round(ratio, 3) for name, (ratio, _) in results.items()}))


def machine() -> str:
    """One line naming the machine the numbers came from."""
    cpus = os.cpu_count()
    return f"python {sys.version.split()[0]}, {cpus} CPUs, {subprocess.getoutput('uname -m')}"
