"""The evaluation report: one self-contained HTML page (every image embedded)."""

import html

from kftransfer.components.core import layout, storage
from kftransfer.components.core.evaluation_result import Evaluation
from kftransfer.components.core.head_sweep import SWEPT
from kftransfer.components.core.plots import (
    html_page,
    img_tag,
    thumbnail,
    training_curves,
)
from kftransfer.components.core.report_classes import class_sections
from kftransfer.components.core.report_trust import trust_sections
from kftransfer.components.core.trust import label_issues_csv


def _metrics_table(models: dict[str, dict]) -> str:
    top_k = next(iter(models.values()))["top_k"]
    rows = [
        ("test images", "examples", "{:d}"),
        ("accuracy", "accuracy", "{:.4f}"),
        (f"top-{top_k} accuracy", "top_k_accuracy", "{:.4f}"),
        ("macro F1", "macro_f1", "{:.4f}"),
        ("log loss", "log_loss", "{:.4f}"),
    ]
    head = "".join(f"<th>{html.escape(name)}</th>" for name in models)
    body = ""
    for title, key, form in rows:
        cells = "".join(
            f"<td>{form.format(m[key]) if m[key] is not None else '–'}</td>"
            for m in models.values()
        )
        body += f"<tr><td>{html.escape(title)}</td>{cells}</tr>"
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>"


def _choice_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """An HTML table of candidates, the `chosen` one in bold."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr" + (' style="font-weight:bold"' if row["chosen"] else "") + ">"
        + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns)
        + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _sweep_section(evaluation: Evaluation) -> str:
    """The head sweep's trials (validation only), the chosen one marked; '' without a sweep."""
    trials = evaluation.training.get("head", {}).get("sweep")
    if not trials:
        return ""
    columns = ("trial", *SWEPT, "val_accuracy", "val_loss", "epochs", "seconds")
    return (
        f"<h2>Head sweep ({len(trials)} trials on cached features)</h2><p>Chosen by validation "
        "accuracy (bold); fine-tuning started from it. The test split played no part.</p>"
        + _choice_table(trials, columns)
    )


def _backbones_section(evaluation: Evaluation) -> str:
    """Each backbone's head on validation, the chosen one marked; '' for a single backbone."""
    candidates = evaluation.training.get("head", {}).get("backbones")
    if not candidates:
        return ""
    return (
        f"<h2>Backbones ({len(candidates)} compared on cached features)</h2><p>Each got a "
        "head; the best on validation (bold) was fine-tuned. The test split played no "
        "part.</p>" + _choice_table(candidates, ("backbone", "val_accuracy", "val_loss", "epochs"))
    )


def _tflite_section(evaluation: Evaluation) -> str:
    """The TFLite model against the model it came from, on the same test images; '' without."""
    report = evaluation.tflite
    if not report:
        return ""
    if "error" in report:
        return (
            f"<h2>TFLite</h2><p>model.tflite ({html.escape(report['mode'])}) could not be "
            f"converted: {html.escape(report['error'])}</p>"
        )
    rows = (
        ("mode", report["mode"]),
        ("size", f"{report['bytes'] / 2**20:.1f} MiB"),
        ("test images judged", f"{report['test_images']:d}"),
        ("accuracy of model.tflite", f"{report['accuracy']:.4f}"),
        ("accuracy of the SavedModel", f"{report['saved_model_accuracy']:.4f}"),
        ("points lost", f"{report['drop_points']:.2f}"),
        ("max |probability difference|", f"{report['max_abs_difference']:.2e}"),
    )
    body = "".join(f"<tr><td>{name}</td><td>{html.escape(value)}</td></tr>" for name, value in rows)
    return (
        "<h2>TFLite</h2><p>model.tflite, as the export will write it, run through the TFLite "
        "interpreter on test images spread over the classes; the verdict's last line "
        f"gates on the points lost.</p><table>{body}</table>"
    )


def _verdict(evaluation: Evaluation) -> str:
    status = "BLESSED: exported" if evaluation.verdict.blessed else "NOT BLESSED: not exported"
    css = "ok" if evaluation.verdict.blessed else "no"
    items = "".join(f"<li>{html.escape(reason)}</li>" for reason in evaluation.verdict.reasons)
    return f"<h2 class='{css}'>{status}</h2><ul>{items}</ul>"


def _misclassified_grid(evaluation: Evaluation) -> str:
    if not evaluation.misclassified:
        return "<p>No misclassified test image.</p>"
    figures = ""
    for item in evaluation.misclassified:
        true, predicted = html.escape(item["true"]), html.escape(item["predicted"])
        caption = f"true: {true}<br>predicted: {predicted} ({item['probability']:.2f})"
        alt = f"{item['uri']}: {item['true']} predicted as {item['predicted']}"
        image = img_tag(thumbnail(item["uri"]), alt)
        figures += f"<figure>{image}<figcaption>{caption}</figcaption></figure>"
    return figures


def render_report(evaluation: Evaluation, histories: dict[str, dict], stats: dict) -> str:
    """The whole report: verdict, metrics table, confusion, per-class bars, curves, mistakes."""
    models = {"head only": evaluation.head, "fine-tuned": evaluation.fine_tuned}
    if evaluation.production:
        models[f"production ({evaluation.production_version})"] = evaluation.production
    labels = evaluation.labels
    totals = stats.get("totals", {})
    sections = [
        _verdict(evaluation),
        "<h2>Test metrics</h2>" + _metrics_table(models),
        f"<p>Data: {totals.get('train', '?')} train, {totals.get('validation', '?')} validation, "
        f"{totals.get('test', '?')} test images; {len(labels)} classes; "
        f"{len(stats.get('skipped', []))} files skipped by validation.</p>",
        class_sections(models, labels),
        _tflite_section(evaluation),
        _backbones_section(evaluation),
        _sweep_section(evaluation),
        "<h2>Training curves</h2>"
        + "".join(
            img_tag(training_curves(h, name), f"{name} curves") for name, h in histories.items()
        ),
        "<h2>Misclassified test images (fine-tuned, most confident first)</h2>"
        + _misclassified_grid(evaluation),
        *trust_sections(evaluation),
    ]
    return html_page("kftransfer evaluation report", "".join(sections))


def write_outputs(
    evaluation: Evaluation,
    evaluation_uri: str,
    report_uri: str,
    splits_uri: str,
    stages: dict[str, str],
    label_issues_uri: str = "",
) -> None:
    """Writes the evaluation JSON, the HTML report and `label_issues.csv`.

    Args:
        evaluation: the result of `evaluate.evaluate_stages`.
        evaluation_uri: where the evaluation JSON goes.
        report_uri: where the report goes.
        splits_uri: the split folder (its statistics go into the report).
        stages: stage name -> stage folder, whose training curves the report shows.
        label_issues_uri: where the label issues go as CSV ('' = not written).
    """
    storage.write_json(evaluation_uri, evaluation.to_json())
    if label_issues_uri:
        storage.write_text(label_issues_uri, label_issues_csv(evaluation.label_issues))
    histories = {name: layout.read_history(stage) for name, stage in stages.items()}
    storage.write_text(
        report_uri, render_report(evaluation, histories, layout.read_stats(splits_uri))
    )
