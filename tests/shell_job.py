"""Starting a command as a shell starts a job, so that a test can press Ctrl-C on it."""

import os
import signal
import subprocess


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


AS_A_SHELL_JOB = {"start_new_session": True, "preexec_fn": _default_sigint}
"""`subprocess.Popen` keywords: a process group of its own, as a shell gives a job, so that
Ctrl-C reaches the command's children too; and SIGINT's default action, which the children
of a pytest-xdist worker would otherwise inherit ignored."""


def press_ctrl_c(process: subprocess.Popen) -> None:
    """What Ctrl-C in a terminal does: SIGINT to the job's whole process group."""
    os.killpg(process.pid, signal.SIGINT)
