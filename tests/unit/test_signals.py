"""`sigterm_deferred`: clean-up runs on SIGTERM, then the process dies of it as before;
`sigterm_raised`: it raises at once; `stop_when_orphaned`: a process whose output reader
is gone stops."""

import signal
import subprocess
import sys

import pytest

from kftransfer.components.core.signals import sigterm_deferred

STOPPED = """
import os, signal, sys, time
from kftransfer.components.core.signals import sigterm_deferred
with sigterm_deferred() as stop_if_terminated:
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(300):
            time.sleep(0.1)
            stop_if_terminated()
        print("not stopped")
    finally:
        print("clean-up ran", flush=True)
"""


def test_clean_up_runs_and_the_process_still_dies_of_sigterm():
    done = subprocess.run([sys.executable, "-c", STOPPED], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (-signal.SIGTERM, "clean-up ran\n", "")


def test_a_handler_set_by_someone_else_is_left_alone():
    def theirs(*_):
        pass

    previous = signal.signal(signal.SIGTERM, theirs)
    try:
        with sigterm_deferred():
            assert signal.getsignal(signal.SIGTERM) is theirs
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, previous)


RAISED = """
import os, signal, time
from kftransfer.components.core.signals import Terminated, sigterm_raised
try:
    with sigterm_raised():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
except Terminated:
    print("raised", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
"""


def test_sigterm_raised_raises_at_once_then_puts_the_default_back():
    done = subprocess.run(
        [sys.executable, "-c", RAISED], capture_output=True, text=True, timeout=20
    )
    assert (done.returncode, done.stdout, done.stderr) == (-signal.SIGTERM, "raised True\n", "")


ORPHAN = """
import time
from kftransfer.components.core.signals import stop_when_orphaned
stop_when_orphaned()
time.sleep(60)
"""


def test_a_process_whose_output_reader_is_gone_stops_with_sigterm():
    process = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE)
    process.stdout.close()  # what reads its output is gone (a killed `kftransfer run`)
    # before: it ran on to its end (60 s here; a whole fine-tuning in a run)
    assert process.wait(timeout=20) == -signal.SIGTERM


def test_output_to_a_file_is_not_watched(tmp_path):
    with open(tmp_path / "out", "w") as out:
        process = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=out)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=2)
    finally:
        process.kill()
        process.wait()
