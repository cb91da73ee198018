"""Running the whole pipeline locally with kfp.local.

Layout of a pipeline root (default `kftransfer-runs/`):

    .kfp_cache/            kfp.local's step cache, shared by the runs (`--cache`)
    <run id>/              one run, `YYYYmmdd-HHMMSS-xxxxxx`, so concurrent runs never meet
        run.log            everything the run printed, from its first line (failed runs too)
        summary.json       what `kftransfer run --json` prints
        report.html        the evaluation report (a copy of the KFP artifact `report`)
        evaluation.json    every metric, the verdict and its reasons (likewise)
        kftransfer-<time>/ kfp.local's folder: one folder per task, the artifacts inside
        tmp/               the steps' temporary files (`$TMPDIR`) while the run lasts

Before anything is written, the run's parameters are validated (`config.validate_run`)
and its source listed (`split_checks.precheck`): a bad parameter or an unusable source is one
line and no run folder. A local run never retries a failed step: here a failure is a
bug or bad data, never a preempted node.
"""

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from typing import Any

from kftransfer.components.core import folders, storage
from kftransfer.components.core.config import (
    ExtractConfig,
    SplitConfig,
    as_declared,
    validate_run,
)
from kftransfer.components.core.errors import Interrupted, UserError
from kftransfer.components.core.input_versions import model_files
from kftransfer.components.core.registry import missing_preset_folder
from kftransfer.components.core.signals import Terminated, sigterm_raised
from kftransfer.components.core.split_checks import precheck
from kftransfer.pipelines.settings import ClusterSettings
from kftransfer.pipelines.step_log import failure, step_log
from kftransfer.pipelines.summary import summarize, write_summary
from kftransfer.pipelines.transfer_learning import PIPELINE_NAME, build_pipeline, task_names

LOG_FILE = "run.log"
CACHE_FOLDER = ".kfp_cache"
TEMP_FOLDER = "tmp"


def prepare_run(
    arguments: dict[str, Any], pipeline_root: str, backbones: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Checks a local run's parameters, preset folders, source and pipeline root, writing nothing.

    Returns:
        The arguments with the types the pipeline declares (`config.as_declared`).

    Raises:
        UserError: one line naming every bad parameter, or the source's or root's problem.
    """
    configs = validate_run(arguments)
    backbones = backbones or (configs[ExtractConfig].backbone,)
    for backbone in backbones:
        if problem := missing_preset_folder(backbone):
            raise UserError(problem)
    if problem := missing_model_file(backbones, configs[ExtractConfig].weights):
        raise UserError(problem)
    try:  # a file in the way or a read-only root fails now, not at the end
        folders.require_folder_path(pipeline_root)
    except storage.StorageError as err:
        raise UserError(f"--pipeline-root {err}") from None
    precheck(arguments["source"], configs[SplitConfig])
    return as_declared(arguments, configs)


def missing_model_file(backbones: tuple[str, ...], weights: str) -> str | None:
    """The problem with a backbone or weights file given by path that is not there.

    The files are those the fingerprint step hashes (`input_versions.model_files`), each
    checked once. Checked before the run folder exists: found at extraction, a typo cost
    the whole split.
    """
    for uri in model_files(list(backbones), weights):
        flag = "--weights" if uri == weights else "--backbone"
        try:
            if not (storage.exists(uri) or storage.is_folder(uri)):  # a preset is a folder
                return f"{flag} {uri}: no such file (the path is read where the run runs)"
        except storage.StorageError as err:
            return f"{flag} {uri}: {err}"
    return None


def new_run_folder(pipeline_root: str) -> str:
    """Creates `<pipeline_root>/<run id>`, a folder no other run shares."""
    os.makedirs(pipeline_root, exist_ok=True)
    while True:
        run = os.path.join(
            pipeline_root, f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        )
        with contextlib.suppress(FileExistsError):
            os.mkdir(run)
            return run


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
        pipeline_root: where runs get their folders (see the module docstring).
        settings: compile-time settings (only `extract_parts` and `backbones` matter locally).
        caching: reuse the outputs of identical earlier steps (kfp.local's step cache).
        verbose: show kfp.local's whole output, not only the steps' progress lines. It is
            always kept in the run folder's `run.log`.

    Raises:
        UserError: bad parameters or source (nothing written), or a failed step (one line
            with the step's own error and the log's path; the run folder stays).
        Interrupted: Ctrl-C; the message names the run folder, which stays, and whether
            the next run reuses the finished steps.
    """
    from kfp import local

    arguments = prepare_run(arguments, pipeline_root, settings.backbones)
    run = new_run_folder(pipeline_root)
    temp = os.path.join(run, TEMP_FOLDER)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=run,
        workspace_root=temp,
        raise_on_error=True,
        enable_caching=caching,
        cache_root=os.path.join(pipeline_root, CACHE_FOLDER),
    )
    settings = dataclasses.replace(settings, retries=0)
    start, log_path = time.time(), os.path.join(run, LOG_FILE)
    with step_log(log_path, verbose) as steps, _temporary_files_in(temp), sigterm_raised():
        try:
            build_pipeline(settings)(**arguments)
        except RuntimeError as err:  # kfp.local: "... Inner task failed: 'X'."
            steps.flush()
            raise UserError(f"{failure(str(err), log_path)}; full log: {log_path}") from err
        except (KeyboardInterrupt, Terminated) as stop:  # Ctrl-C; `kill PID`, `timeout`
            steps.flush()
            line = interrupted_line(run, log_path, steps.finished, caching)
            by = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
            line += kept_in_cache(arguments.get("cache_uri", ""))
            raise Interrupted(line, by) from None
    tasks_folder = os.path.join(run, _kfp_folder(run))
    timings = {"finished": steps.finished, "cached": steps.cached}
    summary = summarize(run, tasks_folder, start, timings, task_names(settings))
    write_summary(run, summary)
    return summary


def interrupted_line(run: str, log_path: str, finished: dict, caching: bool) -> str:
    """What an interrupted run leaves, and whether the next run redoes its finished steps."""
    kept = f"the run folder {run} stays, with its log {log_path}"
    if not finished:
        return f"{kept}; no step had finished"
    if caching:
        return (
            f"{kept}; the same command again reuses its {len(finished)} finished steps from "
            "the step cache, but for the source listing, which always runs"
        )
    return (
        f"{kept}; a new run redoes its {len(finished)} finished steps (with --cache, a run "
        "keeps them for the next one)"
    )


def kept_in_cache(cache_uri: str) -> str:
    """What `--cache-uri` keeps of an interrupted run, the step under way's work included."""
    if not cache_uri:
        return ""
    return (
        f"; the images its split read and the features its extraction computed stay in "
        f"{cache_uri}, and a new run reads and computes only the rest"
    )


@contextlib.contextmanager
def _temporary_files_in(folder: str) -> Iterator[None]:
    """The steps write their temporary files into `folder` (`$TMPDIR`), removed after the block.

    A fine-tuning keeps checkpoints and the decoded training images there (GBs for a large
    training set), kfp.local a folder per step, TensorFlow its generated code. A step
    stopped by Ctrl-C cannot remove its own: they were left in /tmp, one set per stopped
    run. The run removes the folder however it ends; killed outright, it leaves the folder
    in the run folder, in sight, not in /tmp.
    """
    os.makedirs(folder, exist_ok=True)
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = folder  # read by each step process as it starts
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)


def _kfp_folder(run: str) -> str:
    """The folder kfp.local made for the run's tasks inside `run`."""
    return next(name for name in os.listdir(run) if name.startswith(f"{PIPELINE_NAME}-"))
