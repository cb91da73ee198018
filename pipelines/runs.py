"""Running the whole pipeline locally with kfp.local, and summarising the run."""

import contextlib
import io
import json
import logging
import os
import re
import shutil
import sys
import time
import warnings
from typing import Any

from kftransfer.components.core.errors import UserError
from kftransfer.pipelines.settings import ClusterSettings
from kftransfer.pipelines.transfer_learning import build_pipeline, task_names


def run_locally(
    arguments: dict[str, Any],
    pipeline_root: str,
    settings: ClusterSettings = ClusterSettings(),  # noqa: B008 - frozen
    caching: bool = False,
    verbose: bool = False,
) -> dict:
    """Runs the whole DAG with `kfp.local.SubprocessRunner(use_venv=False)`; returns a summary.

    Args:
        arguments: the pipeline's arguments (`source` and any others).
        pipeline_root: where kfp.local writes the run's artifacts.
        settings: compile-time settings (only `extract_parts` matters locally).
        caching: reuse the outputs of identical earlier steps (kfp.local's step cache).
        verbose: show kfp.local's whole output, not only the steps' progress lines. It is
            always kept in the run folder's `run.log`.
    """
    from kfp import local

    os.makedirs(pipeline_root, exist_ok=True)
    before = set(os.listdir(pipeline_root))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=pipeline_root,
        raise_on_error=True,
        enable_caching=caching,
    )
    start = time.time()
    log_path = os.path.join(pipeline_root, "last-run.log")
    root_handlers = logging.getLogger().handlers[:]  # kfp.local may leave one on our stdout
    with (
        open(log_path, "w") as log,
        contextlib.redirect_stdout(steps := StepLog(log, verbose)),
        _restored(logging.getLogger(), root_handlers),
    ):
        warnings.filterwarnings("ignore", "Task .* have no effect in the current local runner")
        warnings.filterwarnings("ignore", "You may be attemping to run a task that uses custom")
        try:
            build_pipeline(settings)(**arguments)
        except RuntimeError as err:  # kfp.local: "... Inner task failed: 'X'."
            log.flush()
            raise UserError(f"{failure(str(err), log_path)}; full log: {log_path}") from err
    new = sorted(set(os.listdir(pipeline_root)) - before - {"last-run.log"})
    run = os.path.join(pipeline_root, new[-1])
    os.replace(log_path, os.path.join(run, "run.log"))
    return summarize(run, start, steps.finished, task_names(settings))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failure(kfp_message: str, log_path: str) -> str:
    """`step X failed: <the step's own error line>`, from kfp.local's message and the log."""
    task = re.search(r"task failed: '([^']+)'", ANSI.sub("", kfp_message))
    with open(log_path) as log:
        errors = re.findall(r"^\s*(?:\w+\.)*(\w*(?:Error|Exception)): (.+)$", log.read(), re.M)
    where = f"step {task.group(1)} failed" if task else "the local run failed"
    return f"{where}: {errors[-1][1]}" if errors else where


@contextlib.contextmanager
def _restored(logger: logging.Logger, handlers: list):
    """Puts `logger`'s handlers back as they were when the block ends."""
    try:
        yield
    finally:
        logger.handlers[:] = handlers


class StepLog(io.TextIOBase):
    """Where kfp.local prints: everything to `log`; to stderr, only what a user reads.

    That is kftransfer's own log lines (progress, epochs, verdicts), warnings, the lines
    of exceptions, and kfp's task status lines; not the executor inputs and outputs nor
    tracebacks. With `verbose`, everything goes to stderr too.
    """

    KEEP = re.compile(
        r"^\s*(\d\d:\d\d:\d\d (INFO|WARNING|ERROR) |\S*Error\b|warning:)"
        r"|Task .* finished with status"
    )

    FINISHED = re.compile(r"Task '([^']+)' finished with status")

    def __init__(self, log, verbose: bool = False):
        super().__init__()
        self.log, self.verbose, self._partial = log, verbose, ""
        self.finished: dict[str, float] = {}  # task -> when kfp.local reported it done

    def writable(self) -> bool:
        """Always."""
        return True

    def write(self, text: str) -> int:
        """Logs `text`; forwards its complete lines that matter."""
        self.log.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if done := self.FINISHED.search(ANSI.sub("", line)):
                self.finished[done.group(1)] = time.time()
            if self.verbose:
                sys.stderr.write(line + "\n")
            elif self.KEEP.search(line):
                sys.stderr.write(line.strip() + "\n")
        return len(text)


# kfp.local artifact files a person opens, and the names with extensions they get beside them.
READABLE = {"report": "report.html", "evaluation": "evaluation.json"}


def readable_copies(run: str) -> dict[str, str]:
    """Copies the evaluation step's report and evaluation to `report.html`/`evaluation.json`.

    KFP's artifacts are files without extensions (`report`, `evaluation`); the copies
    beside them open in a browser or an editor. Returns artifact name -> copy.
    """
    copies = {}
    for name, readable in READABLE.items():
        artifact = os.path.join(run, "evaluate-model", name)
        if os.path.isfile(artifact):
            copies[name] = os.path.join(run, "evaluate-model", readable)
            shutil.copyfile(artifact, copies[name])
    return copies


def _read_json(path: str) -> dict:
    """The JSON document at `path`, or {} when there is none."""
    if not os.path.exists(path):
        return {}
    with open(path) as file:
        return json.load(file)


def _executor_output(run: str, task: str) -> dict:
    return _read_json(os.path.join(run, task, "executor_output.json"))


def _artifact_metadata(output: dict, name: str) -> dict:
    artifacts = output.get("artifacts", {}).get(name, {}).get("artifacts", [{}])
    return artifacts[0].get("metadata", {})


def summarize(run: str, start: float, finished: dict[str, float], tasks: list[str]) -> dict:
    """Metrics of both stages, the verdict, artifact paths and step times of a local run.

    Args:
        run: the run's folder under the pipeline root.
        start: when the run started (`time.time()`).
        finished: when kfp.local reported each task done; a task without it (say, taken
            from the cache) is timed by its executor output file.
        tasks: the run's task names (`transfer_learning.task_names`).

    Returns:
        The summary `kftransfer run --json` prints.
    """
    readable = readable_copies(run)
    evaluation = _read_json(readable.get("evaluation", ""))
    head = _artifact_metadata(_executor_output(run, "train-head"), "metrics")
    tuned = _artifact_metadata(_executor_output(run, "fine-tune"), "metrics")
    exported = _artifact_metadata(_executor_output(run, "export-model"), "exported")
    ends = {
        t: os.path.getmtime(p)
        for t in tasks
        if os.path.exists(p := os.path.join(run, t, "executor_output.json"))
    } | finished
    seconds, previous = {}, start
    for task, end in sorted(ends.items(), key=lambda item: item[1]):
        seconds[task], previous = round(end - previous, 1), end
    return {
        "run": run,
        "head": {
            "val_accuracy": head.get("val_accuracy"),
            "test_accuracy": evaluation.get("head", {}).get("accuracy"),
        },
        "fine_tuned": {
            "initial_val_accuracy": tuned.get("initial_val_accuracy"),
            "val_accuracy": tuned.get("val_accuracy"),
            "test_accuracy": evaluation.get("fine_tuned", {}).get("accuracy"),
        },
        "blessed": evaluation.get("verdict", {}).get("blessed"),
        "reasons": evaluation.get("verdict", {}).get("reasons", []),
        "report": readable.get("report"),
        "exported": exported.get("uri"),
        "artifacts": {
            task: sorted(os.listdir(os.path.join(run, task)))
            for task in tasks
            if os.path.isdir(os.path.join(run, task))
        },
        "seconds": {**seconds, "total": round(time.time() - start, 1)},
    }
