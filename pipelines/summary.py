"""The summary of a local run: what `kftransfer run` prints, and `--json`'s document.

Everything comes from the run's own folder: the evaluation (which always runs, so its
artifact holds both stages' training summaries even when they were served from the
step cache), the export step's output, kfp.local's executor outputs, and its timings.
The `--json` schema is documented in the README ("The --json summary").
"""

import csv
import json
import os
import time

from kftransfer.components.core import layout, storage
from kftransfer.components.core.exclusions import read_exclusions
from kftransfer.components.core.model_card import tflite_figures
from kftransfer.components.core.split_checks import skipped_line
from kftransfer.pipelines.terminal import printable

SUMMARY_FILE = "summary.json"
# kfp.local artifact files a person opens -> the names, with extensions, of their copies
# at the top of the run folder.
READABLE = {
    "report": "report.html",
    "evaluation": layout.EVALUATION_FILE,
    "label_issues": "label_issues.csv",
}
# The evaluation's inputs, and the tasks that wrote them (for a cached task's artifacts).
PRODUCERS = {"splits": "split-data", "features": "extract-bottlenecks", "head": "train-head",
             "model": "fine-tune"}  # fmt: skip
WARNINGS_SHOWN = 3  # the split's warnings a run's summary repeats; stats.json has them all


def display_path(path: str) -> str:
    """`path` relative to the working directory when it lies below it, else as given."""
    if "://" in path or not path:
        return path
    relative = os.path.relpath(os.path.abspath(path))
    return path if relative.startswith("..") else relative


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def readable_copies(run: str, tasks_folder: str) -> dict[str, str]:
    """Copies the evaluation's `report` and `evaluation` to the run folder, with extensions."""
    copies = {}
    for name, readable in READABLE.items():
        artifact = os.path.join(tasks_folder, "evaluate-model", name)
        if os.path.isfile(artifact):
            copies[name] = os.path.join(run, readable)
            storage.copy(artifact, copies[name])
    return copies


def _outputs(tasks_folder: str, task: str) -> dict[str, dict]:
    """A task's output artifacts (name -> {uri, metadata}) from its executor output."""
    output = _read_json(os.path.join(tasks_folder, task, "executor_output.json"))
    found = {}
    for name, artifacts in output.get("artifacts", {}).items():
        for artifact in artifacts.get("artifacts", [])[:1]:
            found[name] = {"uri": artifact.get("uri"), "metadata": artifact.get("metadata", {})}
    return found


def _artifacts(tasks_folder: str, tasks: list[str], inputs: dict[str, str]) -> dict:
    """Task -> {artifact name -> path}: from the tasks that ran, else the evaluation's inputs."""
    found = {}
    for task in tasks:
        outputs = _outputs(tasks_folder, task)
        if outputs:
            found[task] = {name: output["uri"] for name, output in outputs.items()}
    listed = {path for artifacts in found.values() for path in artifacts.values()}
    producers = dict(PRODUCERS)
    if "choose-backbone" in tasks:  # --backbones: the chosen head and features are its copies
        producers.update(features="choose-backbone", head="choose-backbone")
    for name, path in inputs.items():
        if path not in listed:  # made by an earlier run, and served from the cache
            found.setdefault(producers[name], {}).setdefault(name, path)
    return found


def _seconds(tasks_folder: str, tasks: list[str], start: float, finished: dict) -> dict:
    """Each task's wall time, in the order they ended (times of tasks that ran only)."""
    ends = {
        task: os.path.getmtime(path)
        for task in tasks
        if os.path.exists(path := os.path.join(tasks_folder, task, "executor_output.json"))
    } | finished
    seconds, previous = {}, start
    for task, end in sorted(ends.items(), key=lambda item: item[1]):
        seconds[task], previous = round(end - previous, 1), end
    return {**seconds, "total": round(time.time() - start, 1)}


def summarize(run: str, tasks_folder: str, start: float, timings: dict, tasks: list[str]) -> dict:
    """Metrics of both stages, the verdict, artifact paths and step times of a local run.

    Args:
        run: the run's folder.
        tasks_folder: kfp.local's folder of the run's tasks, inside `run`.
        start: when the run started (`time.time()`).
        timings: `finished`: when kfp.local reported each task that ran done; `cached`:
            the tasks it served from its step cache.
        tasks: the pipeline's task names (`transfer_learning.task_names`).
    """
    copies = readable_copies(run, tasks_folder)
    evaluation = _read_json(copies.get("evaluation", ""))
    training = evaluation.get("training", {})
    head, tuned = training.get("head", {}), training.get("fine_tuned", {})
    exported = _outputs(tasks_folder, "export-model").get("exported", {}).get("metadata", {})
    artifacts = _artifacts(tasks_folder, tasks, evaluation.get("inputs", {}))
    return {
        "run": run,
        "head": {
            "val_accuracy": head.get("val_accuracy"),
            "test_accuracy": evaluation.get("head", {}).get("accuracy"),
        },
        "backbones": [
            {key: c[key] for key in ("backbone", "val_accuracy", "chosen")}
            for c in head.get("backbones", [])
        ],
        "fine_tuned": {
            "initial_val_accuracy": tuned.get("initial_val_accuracy"),
            "val_accuracy": tuned.get("val_accuracy"),
            "test_accuracy": evaluation.get("fine_tuned", {}).get("accuracy"),
        },
        "blessed": evaluation.get("verdict", {}).get("blessed"),
        "reasons": evaluation.get("verdict", {}).get("reasons", []),
        "trust": trust_summary(evaluation, copies.get("label_issues")),
        "report": copies.get("report"),
        "exported": exported.get("uri"),
        "tflite": tflite_figures(evaluation["tflite"]) if evaluation.get("tflite") else {},
        **split_summary(artifacts.get("split-data", {}).get("splits")),
        "artifacts": artifacts,
        "cached": [task for task in tasks if task in timings["cached"]],
        "seconds": _seconds(tasks_folder, tasks, start, timings["finished"]),
    }


def trust_summary(evaluation: dict, label_issues_csv: str | None) -> dict:
    """Calibration, label issues and leakage of a run, for `--json` and the table."""
    tuned = evaluation.get("calibration", {}).get("fine_tuned", {})
    duplicates = evaluation.get("near_duplicates", {})
    return {
        "temperature": tuned.get("temperature"),
        "temperature_from": tuned.get("temperature_from"),
        "ece_before": tuned.get("ece_before"),
        "ece_after": tuned.get("ece_after"),
        "min_confidence": tuned.get("min_confidence"),
        "label_issues": len(evaluation.get("label_issues", {}).get("issues", [])),
        "label_issues_csv": label_issues_csv,
        "leaked_test_images": duplicates.get("leaked_count"),
        "test_accuracy_without_leaked": duplicates.get("accuracy_without_leaked"),
    }


def _unless_fitted(trust: dict) -> str:
    """', not fitted: ...' when the temperature was not fitted (validation had no mistake)."""
    said = trust.get("temperature_from") or ""
    return f", {said}" if said.startswith("not fitted") else ""


def split_summary(splits: str | None) -> dict:
    """What the split left out and warned of, from its `stats.json`, for the run's summary.

    `skipped`: the files validation left out (how many, by reason, and its line for the
    table). `warnings`: what the split logged as the run went (look-alike or respelled
    class names, a class with no images in a split, exclusions naming no file).
    """
    stats_path = os.path.join(splits, layout.STATS_FILE) if splits else ""
    stats = _read_json(stats_path)
    skipped = {
        "files": len(stats.get("skipped", [])),
        "by_reason": stats.get("skipped_by_reason", {}),
        "line": skipped_line(stats, display_path(stats_path)),
    }
    return {"skipped": skipped, "warnings": stats.get("warnings", [])}


def exclusion_list(summary: dict, count: int, already: str = "") -> tuple[str, int]:
    """Writes `<run>/excluded.txt`: label issues to leave out, and what already was.

    The run's `count` likeliest label issues (-1: all), then the images of `already` (the
    run's own `--exclude` file), so the rerun leaves out both.

    Returns:
        the file's path and how many label issues it adds.
    """
    with open(summary["trust"]["label_issues_csv"], encoding="utf-8", newline="") as file:
        uris = [row["uri"] for row in csv.DictReader(file)]
    chosen = uris if count < 0 else uris[:count]
    path = os.path.join(summary["run"], "excluded.txt")
    storage.write_text(
        path, "".join(f"{uri}\n" for uri in [*chosen, *sorted(read_exclusions(already))])
    )
    return path, len(chosen)


def write_summary(run: str, summary: dict) -> None:
    """Keeps the summary in the run folder (`summary.json`)."""
    storage.write_json(os.path.join(run, SUMMARY_FILE), summary)


def _tflite_line(tflite: dict) -> str:
    if "error" in tflite:
        return f"tflite:   {tflite['mode']}, conversion failed: {tflite['error']}"
    return (
        f"tflite:   {tflite['mode']}, {tflite['mib']:.1f} MiB, test accuracy "
        f"{tflite['accuracy']:.4f} ({tflite['drop_points']:.2f} points lost against the "
        f"SavedModel's {tflite['saved_model_accuracy']:.4f})"
    )


def format_summary(summary: dict) -> str:
    """The human summary of a run: both stages' accuracy, the verdict, where things are."""

    def cell(value):
        return f"{value:10.4f}" if isinstance(value, float) else f"{'-':>10}"

    lines = [
        f"backbone {c['backbone']}: head validation {c['val_accuracy']:.4f}"
        + (" (chosen)" if c["chosen"] else "")
        for c in summary.get("backbones", [])
    ]
    lines.append(f"{'':12}{'validation':>12}{'test':>10}")
    for name, key in (("head only", "head"), ("fine-tuned", "fine_tuned")):
        stage = summary[key]
        lines.append(f"{name:12}  {cell(stage['val_accuracy'])}{cell(stage['test_accuracy'])}")
    trust = summary.get("trust", {})
    if trust.get("ece_after") is not None:
        lines.append(
            f"calibration: ECE {trust['ece_before']:.3f} -> {trust['ece_after']:.3f} "
            f"(T={trust['temperature']:.2f}{_unless_fitted(trust)}); answers 'unknown' below "
            f"{trust['min_confidence']:.2f}"
        )
        lines.append(
            f"data: {trust['label_issues']} likely label errors "
            f"({display_path(trust['label_issues_csv'] or '')}), "
            f"{trust['leaked_test_images']} test images with a near-duplicate in training"
        )
    if summary.get("skipped", {}).get("line"):
        lines.append(f"data: {summary['skipped']['line']}")
    warnings = summary.get("warnings", [])
    lines += [f"data: warning: {warning}" for warning in warnings[:WARNINGS_SHOWN]]
    if len(warnings) > WARNINGS_SHOWN:
        lines.append(f"data: {len(warnings) - WARNINGS_SHOWN} more warnings: see stats.json")
    lines.append(f"blessed: {'yes' if summary['blessed'] else 'no'}")
    lines += [f"  {reason}" for reason in summary["reasons"]]
    lines.append(f"report:   {display_path(summary['report'] or '')}")
    if summary["exported"]:
        lines.append(f"exported: {display_path(summary['exported'])}")
    if summary.get("tflite"):
        lines.append(_tflite_line(summary["tflite"]))
    if summary.get("excluded_label_issues"):
        excluded = summary["excluded_label_issues"]
        lines.append(
            f"retrained without {excluded['count']} likely label errors "
            f"({display_path(excluded['list'])}; first run: {display_path(excluded['first_run'])})"
        )
    return "\n".join(printable(line) for line in lines)  # one line each, whatever names hold
