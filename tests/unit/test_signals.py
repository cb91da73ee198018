"""`sigterm_raises`: clean-up runs on SIGTERM, then the process dies of it as before."""

import signal
import subprocess
import sys

from kftransfer.components.core.signals import sigterm_raises

STOPPED = """
import os, signal, sys, time
from kftransfer.components.core.signals import sigterm_raises
with sigterm_raises():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
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
        with sigterm_raises():
            assert signal.getsignal(signal.SIGTERM) is theirs
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, previous)
