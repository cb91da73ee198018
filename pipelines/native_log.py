"""Keeps TensorFlow's C++ log lines off the CLI's stderr.

TensorFlow 2.19+ logs through Abseil before anything calls `absl::InitializeLog()`, so
every message goes to stderr whatever `TF_CPP_MIN_LOG_LEVEL` says
(tensorflow/tensorflow#100442): each command that runs TensorFlow in the CLI's own process
(`split`, `predict`) printed four to six lines such as `I0000 ... port.cc:153] oneDNN custom
operations are on` before its answers. Python cannot reach Abseil's settings, so the CLI
sends what native code writes to stderr (file descriptor 2) through a small filter process
instead, while Python's `sys.stderr` (the CLI's own lines, tracebacks, warnings) keeps
writing straight to the terminal, in order with stdout. The filter drops Abseil's info and
warning lines and the errors listed in `HARMLESS`, and passes every other line on
unchanged, such as a real error or a fatal line from TensorFlow. A separate process
rather than a thread, so that a crash of the CLI loses nothing: the filter reads to the end
of the pipe whatever happens to the writer. `kftransfer -v` keeps every line.
"""

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator

# Abseil's log line: severity letter, MMDD, time (before InitializeLog: 00:00:<epoch seconds>),
# thread id, "file:line] ", message.
ABSL_PREFIX = r"[{levels}]\d{{4}} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] "

# Error-level lines TensorFlow prints on CPU runs that are not errors.
HARMLESS = (
    # a uint8 op runs on TensorFlow's Eigen kernel instead of oneDNN's (so the line says)
    "oneDNN supports DT_UINT8 only on platforms with AVX-512",
    # tf.data's Python sets an attribute its C++ op lacks, "ignored" (so the line says)
    "NodeDef mentions attribute use_unbounded_threadpool",
)

DROPPED = "|".join([
    re.escape("WARNING: All log messages before absl::InitializeLog() is called"),
    ABSL_PREFIX.format(levels="IW"),
    ABSL_PREFIX.format(levels="E") + "(?:" + "|".join(map(re.escape, HARMLESS)) + ")",
])  # fmt: skip

# The filter process's program (python -I -S: no site packages, quick to start); its
# argument is DROPPED.
FILTER = """
import re, sys
dropped = re.compile(sys.argv[1].encode())
out = sys.stdout.buffer
try:
    for line in sys.stdin.buffer:
        if not dropped.match(line):
            out.write(line)
            out.flush()
except BrokenPipeError:
    pass
"""


@contextlib.contextmanager
def tensorflow_logs_dropped(enabled: bool = True) -> Iterator[None]:
    """Sends native writes to stderr (fd 2) through the filter process for the block.

    Python's own `sys.stderr` keeps writing straight to the original stderr, so the CLI's
    lines stay in order with its stdout (`2>&1`); only what native code (TensorFlow's
    C++) writes to fd 2 goes through the filter. Does nothing when `enabled` is false,
    off POSIX, or when `sys.stderr` is not the process's own (a test's `CliRunner`
    replaces it, and has no TensorFlow lines to drop).
    """
    if not enabled or os.name != "posix" or sys.stderr is not sys.__stderr__:
        yield
        return
    sys.stderr.flush()
    original = os.dup(2)
    try:
        filter_process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", FILTER, DROPPED],
            stdin=subprocess.PIPE,
            stdout=original,
            stderr=original,
            start_new_session=True,  # Ctrl-C stops the CLI, not its stderr
        )
    except OSError:
        os.close(original)
        yield
        return
    python_stderr = sys.stderr
    sys.stderr = open(  # noqa: SIM115 - closed in `finally`
        original, "w", buffering=1, encoding=python_stderr.encoding,
        errors=python_stderr.errors, closefd=False,
    )  # fmt: skip
    os.dup2(filter_process.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(original, 2)
        os.close(original)
        filter_process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            filter_process.wait(timeout=10)  # a child of the CLI may still hold the pipe
