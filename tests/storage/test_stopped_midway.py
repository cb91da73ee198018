"""A split or an extraction stopped part-way keeps what it did; the next does only the rest.

A first split or extraction of a big bucket reads every image; Ctrl-C, a preempted or
killed pod or a storage error used to throw all of that away. Each runs here in a process
of its own, reading a bucket (GCS emulator) through a proxy that counts the image reads,
and is stopped once it has read a given number of images.
"""

import os
import signal
import subprocess
import sys
import threading

from devtools.imagegen import write_class_folders
from devtools.proxy import Proxy
from kftransfer.components.core import layout, storage
from kftransfer.components.core.config import ExtractConfig, SplitConfig
from kftransfer.components.core.features import extract_features
from kftransfer.components.core.split import CHECK_THREADS, split_dataset, write_split
from tests.shell_job import AS_A_SHELL_JOB

CONFIG = SplitConfig()  # the CLI's defaults
CLI = "from kftransfer.pipelines.cli import main; main()"
# The same CLI, writing what it has read every 0.2 s instead of every minute.
CLI_CHECKPOINTING = (
    "from kftransfer.components.core import validation_cache as cache; "
    "cache.CHECKPOINT_SECONDS = 0.2; " + CLI
)

SMALL = {"backbone": "vgg16", "weights": "none", "image_size": 32, "batch_size": 8}
EXTRACT_CONFIG = ExtractConfig(**SMALL)
# extract_features(SPLITS, OUT, EXTRACT_CONFIG, CACHE) in a process of its own, logging
EXTRACT = (
    "import sys; from kftransfer.components.core.progress import setup_logging; "
    "from kftransfer.components.core.config import ExtractConfig; "
    "from kftransfer.components.core.features import extract_features; "
    f"setup_logging(); extract_features(*sys.argv[1:3], ExtractConfig(**{SMALL!r}), sys.argv[3])"
)
# Put before EXTRACT: the same extraction, writing queued rows every 0.5 s, not every minute.
FLUSHING = "from kftransfer.components.core import chunk_store; chunk_store.FLUSH_SECONDS = 0.5; "


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


def stopped_by(
    sig: int,
    command: list[str],
    after_reads: int = 60,
    after_line: str = "",
    latency: float = 0.05,
):
    """Runs `python -c command...` and sends it `sig` once it has read `after_reads` images.

    With `after_line`, once it has also written a line holding that text to stderr (whose
    lines are then not returned). Each read takes `latency` seconds more. Returns the
    process, its stderr, and how many images it had read at the signal and in all.
    """
    reads = ImageReads(wanted=after_reads)
    emulator = storage.gcs.client()._connection.API_BASE_URL
    with Proxy(emulator, latency=latency, cut_after=reads) as proxy:
        process = subprocess.Popen(
            [sys.executable, "-c", *command],
            stderr=subprocess.PIPE, text=True, **AS_A_SHELL_JOB,
            env={**os.environ, "STORAGE_EMULATOR_HOST": proxy.url},
        )  # fmt: skip
        assert reads.reached.wait(timeout=120), f"it read fewer than {after_reads} images"
        if after_line:
            assert any(after_line in line for line in process.stderr), f"no {after_line!r}"
        os.killpg(process.pid, sig)  # a whole process group, as Ctrl-C in a terminal
        at_signal = reads.count
        stderr = process.communicate(timeout=120)[1]
    return process, stderr, at_signal, reads.count


def split_stopped_by(sig: int, launcher: str, data: str, out: str, cache: str):
    """`kftransfer split data` stopped by `sig` after 60 image reads (see `stopped_by`)."""
    return stopped_by(sig, [launcher, "split", data, "--out", out, "--cache-uri", cache])


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
    # Only the reads already running finish, and those the threads start before the
    # handler runs (CI saw 18 after the signal once, under load); before, the 256 queued
    # ones were read too.
    assert read - at_signal <= 2 * CHECK_THREADS
    assert not storage.exists(storage.join(out, layout.STATS_FILE))
    # before: no verdict kept, and the rerun read all 300 again
    assert assert_rerun_reads_only_the_rest(data, cache, total=300) <= read


def test_a_killed_split_keeps_what_it_read_before_its_last_checkpoint(gcs_bucket, tmp_path):
    data, out, cache = f"{gcs_bucket}/photos", f"{gcs_bucket}/split", str(tmp_path / "cache")
    write_class_folders(data, {"cat": 150, "dog": 150})
    process, *_ = split_stopped_by(signal.SIGKILL, CLI_CHECKPOINTING, data, out, cache)
    assert process.returncode == -signal.SIGKILL  # no handler ran: only checkpoints count
    assert assert_rerun_reads_only_the_rest(data, cache, total=300) > 0


def test_a_stopped_pod_keeps_what_it_read_and_still_dies_of_sigterm(gcs_bucket, tmp_path):
    # Kubernetes stops a pod with SIGTERM, which Argo passes to the step's process group
    # (docs/kfp-backend.md). Checkpoints come every minute; before, the 60-odd images read
    # in the seconds since the start were lost.
    data, out, cache = f"{gcs_bucket}/photos", f"{gcs_bucket}/split", str(tmp_path / "cache")
    write_class_folders(data, {"cat": 150, "dog": 150})
    process, *_, read = split_stopped_by(signal.SIGTERM, CLI, data, out, cache)
    assert process.returncode == -signal.SIGTERM  # as a process without the handler
    assert 0 < assert_rerun_reads_only_the_rest(data, cache, total=300) <= read


def extraction_stopped_by(sig: int, code: str, gcs_bucket: str, tmp_path) -> dict[str, int]:
    """A real extraction of 300 images (`code`), stopped by `sig` once its progress shows.

    Reads of 0.5 s (16 at a time) make it last 10 s or more, so its progress shows after
    5 s, once the features of some batches are computed: then it is stopped. Returns what
    the next extraction, with the same cache, `extracted` and `reused`.
    """
    data, splits = f"{gcs_bucket}/photos", f"{gcs_bucket}/split"
    cache = str(tmp_path / "cache")
    write_class_folders(data, {"cat": 150, "dog": 150})
    write_split(split_dataset(data, CONFIG), splits)
    extract = [code, splits, f"{gcs_bucket}/features-1", cache]
    process, stderr, *_ = stopped_by(sig, extract, after_line="/300 images (", latency=0.5)
    assert process.returncode == -sig, stderr
    manifest = extract_features(splits, f"{gcs_bucket}/features-2", EXTRACT_CONFIG, cache)
    return {k: sum(s[k] for s in manifest["splits"].values()) for k in ("extracted", "reused")}


def test_a_stopped_extraction_keeps_the_features_it_computed(gcs_bucket, tmp_path):
    # Features are written to the cache a chunk (64 MB) at a time: 65,536 rows here, so
    # before, a stopped extraction had written none, and its retry computed all again.
    counts = extraction_stopped_by(signal.SIGTERM, EXTRACT, gcs_bucket, tmp_path)
    assert counts["reused"] > 0 and sum(counts.values()) == 300, counts


def test_a_killed_extraction_keeps_the_features_computed_before_its_last_flush(
    gcs_bucket, tmp_path
):
    # On a cluster a stopped pod's step is killed about a second after its SIGTERM, with
    # the launcher (docs/kfp-backend.md): too soon to count on the handler's last write.
    # Queued rows are written every FLUSH_SECONDS (0.5 s here, a minute in use); before,
    # only a full 64 MB chunk was, and a killed extraction had kept none of its 300 rows.
    counts = extraction_stopped_by(signal.SIGKILL, FLUSHING + EXTRACT, gcs_bucket, tmp_path)
    assert counts["reused"] > 0 and sum(counts.values()) == 300, counts
