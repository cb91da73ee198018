"""A split stopped part-way keeps what it read, so the next one reads only the rest.

A first split of a big bucket reads every image; Ctrl-C, a preempted pod or a storage
error used to throw all of that away. `kftransfer split` runs in a process of its own,
reading a bucket (GCS emulator) through a proxy that counts the image reads, and is
stopped once it has read 60 of 300 images.
"""

import os
import signal
import subprocess
import sys
import threading

from devtools.imagegen import write_class_folders
from devtools.proxy import Proxy
from kftransfer.components.core import layout, storage
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.split import CHECK_THREADS, split_dataset

CONFIG = SplitConfig()  # the CLI's defaults
CLI = "from kftransfer.pipelines.cli import main; main()"
# The same CLI, writing what it has read every 0.2 s instead of every minute.
CLI_CHECKPOINTING = (
    "from kftransfer.components.core import validation_cache as cache; "
    "cache.CHECKPOINT_SECONDS = 0.2; " + CLI
)


class ImageReads:
    """Counts the images read through a `Proxy` and tells when `wanted` were."""

    def __init__(self, wanted: int):
        self.count, self.wanted, self.reached = 0, wanted, threading.Event()
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str, _body: bytes) -> bool:
        if method == "GET" and "alt=media" in path:
            with self.lock:
                self.count += 1
                if self.count >= self.wanted:
                    self.reached.set()
        return False  # never cut storage off: only count


def split_stopped_by(sig: int, launcher: str, data: str, out: str, cache: str):
    """Runs `kftransfer split` on `data` and sends it `sig` after 60 image reads.

    Returns the process, its stderr, and how many images it had read at the signal and
    in all.
    """
    reads = ImageReads(wanted=60)
    emulator = storage.gcs.client()._connection.API_BASE_URL
    with Proxy(emulator, latency=0.05, cut_after=reads) as proxy:
        process = subprocess.Popen(
            [sys.executable, "-c", launcher, "split", data, "--out", out, "--cache-uri", cache],
            stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "STORAGE_EMULATOR_HOST": proxy.url},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        assert reads.reached.wait(timeout=120), "the split read fewer than 60 images"
        os.killpg(process.pid, sig)  # a whole process group, as Ctrl-C in a terminal
        at_signal = reads.count
        stderr = process.communicate(timeout=120)[1]
    return process, stderr, at_signal, reads.count


def assert_rerun_reads_only_the_rest(data: str, cache: str, total: int) -> int:
    """The next split reuses some verdicts, reads the rest, and equals a cold split."""
    rerun = split_dataset(data, CONFIG, cache)
    counts = rerun.stats["validation"]
    assert counts["reused"] > 0 and counts["checked"] + counts["reused"] == total, counts
    cold = split_dataset(data, CONFIG)
    assert [(r.uri, r.sha256, r.split) for r in rerun.rows] == [
        (r.uri, r.sha256, r.split) for r in cold.rows
    ]
    return counts["reused"]


def test_ctrl_c_keeps_the_verdicts_read_and_cancels_the_queued_reads(gcs_bucket, tmp_path):
    data, out, cache = f"{gcs_bucket}/photos", f"{gcs_bucket}/split", str(tmp_path / "cache")
    write_class_folders(data, {"cat": 150, "dog": 150})
    process, stderr, at_signal, read = split_stopped_by(signal.SIGINT, CLI, data, out, cache)
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1] == (
        f"interrupted: nothing was written to {out}; the images read so far keep their "
        f"verdicts in {cache}, so the same command reads only the rest"
    )
    # Only the reads already running finish; before, the 256 queued ones were read too.
    assert read - at_signal <= CHECK_THREADS
    assert not storage.exists(storage.join(out, layout.STATS_FILE))
    # before: no verdict kept, and the rerun read all 300 again
    assert assert_rerun_reads_only_the_rest(data, cache, total=300) <= read


def test_a_killed_split_keeps_what_it_read_before_its_last_checkpoint(gcs_bucket, tmp_path):
    data, out, cache = f"{gcs_bucket}/photos", f"{gcs_bucket}/split", str(tmp_path / "cache")
    write_class_folders(data, {"cat": 150, "dog": 150})
    process, *_ = split_stopped_by(signal.SIGKILL, CLI_CHECKPOINTING, data, out, cache)
    assert process.returncode == -signal.SIGKILL  # no handler ran: only checkpoints count
    assert assert_rerun_reads_only_the_rest(data, cache, total=300) > 0
