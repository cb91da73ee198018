"""The CLI's stderr filter: TensorFlow's C++ info lines go, everything else stays."""

import subprocess
import sys

# What TensorFlow 2.21 prints on stderr importing itself and predicting, whatever
# TF_CPP_MIN_LOG_LEVEL says; then lines that must get through.
TENSORFLOW_NOISE = b"""\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795620673.407632   28131 port.cc:153] oneDNN custom operations are on.
W1125 15:28:29.407632   28131 cpu_feature_guard.cc:210] a warning
E0000 00:00:1795620676.612653   28131 util.cc:131] oneDNN supports DT_UINT8 only on platforms with AVX-512. Falling back.
E0000 00:00:1795619726.841719   14640 node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition
"""  # noqa: E501
KEPT = b"""\
15:28:29 INFO head epoch 1/50: loss 2.4970
E0000 00:00:1795619726.841719   14640 cuda_dnn.cc:8579] Unable to register cuDNN factory
error: gs://b/x: not found
F0000 00:00:1795619726.841719   14640 check.cc:1] Check failed: kept when the process aborts
"""

WRITER = """
import os, sys
from kftransfer.pipelines.native_log import tensorflow_logs_dropped
with tensorflow_logs_dropped(enabled=sys.argv[1] == "on"):
    os.write(2, sys.stdin.buffer.read())
    print("stdout is untouched", flush=True)
    os.abort()  # a crash: the filter must still pass on what was written before it
"""


def run_writer(enabled: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WRITER, enabled], input=TENSORFLOW_NOISE + KEPT,
        capture_output=True, timeout=60,
    )  # fmt: skip


def test_tensorflow_info_lines_are_dropped_and_the_rest_kept_even_through_a_crash():
    result = run_writer("on")
    assert result.returncode < 0  # SIGABRT
    assert result.stderr == KEPT
    assert result.stdout == b"stdout is untouched\n"


def test_verbose_keeps_every_line():
    assert run_writer("off").stderr == TENSORFLOW_NOISE + KEPT


INTERLEAVED = """
import os, sys
from kftransfer.pipelines.native_log import tensorflow_logs_dropped
with tensorflow_logs_dropped():
    for i in range(50):
        print(f"error: image {i}", file=sys.stderr, flush=True)
        os.write(2, b"I0000 00:00:1795620673.407632   28131 port.cc:153] native\\n")
        print(f"answer {i}", flush=True)
"""


def test_the_clis_own_stderr_lines_stay_in_order_with_stdout():
    # `predict ... 2>&1`: each error line before the next answer, as without the filter
    # (a first version sent Python's stderr through the filter too, and they swapped)
    result = subprocess.run(
        [sys.executable, "-c", INTERLEAVED], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        line for i in range(50) for line in (f"error: image {i}", f"answer {i}")
    ]
