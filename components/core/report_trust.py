"""The report's sections on trust: calibration, likely label errors, near-duplicate leakage."""

import html

from kftransfer.components.core.evaluation_result import Evaluation
from kftransfer.components.core.plots import figure_png, img_tag, plt, thumbnail

SHOWN = 24  # label issues and pairs shown with thumbnails


def reliability_diagram(calibration: dict) -> bytes:
    """Accuracy against confidence per bin, before and after temperature scaling."""
    figure, axis = plt.subplots(figsize=(4.5, 4.2))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name, style in (("before", "o-"), ("after", "s-")):
        bins = calibration["reliability"][name]
        axis.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            style,
            label=f"{name} (ECE {calibration[f'ece_{name}']:.3f})",
        )
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title(f"test split, T = {calibration['temperature']:.3f}")
    return figure_png(figure)


def calibration_section(evaluation: Evaluation) -> str:
    """Reliability diagram, ECE before/after for both models, and coverage vs accuracy."""
    tuned, head = evaluation.calibration["fine_tuned"], evaluation.calibration["head"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{c['temperature']:.3f}</td><td>{c['ece_before']:.4f}</td>"
        f"<td>{c['ece_after']:.4f}</td></tr>"
        for name, c in (("fine-tuned", tuned), ("head only", head))
    )
    coverage = "".join(
        f"<tr><td>{c['min_confidence']:.2f}</td><td>{c['answered']:.1%}</td>"
        f"<td>{'–' if c['accuracy'] is None else format(c['accuracy'], '.4f')}</td></tr>"
        for c in tuned["coverage"]
    )
    threshold = tuned["min_confidence"]
    answer = (
        f"answers 'unknown' below a calibrated confidence of {threshold:.3f} "
        f"({html.escape(tuned['min_confidence_chosen_by'])})"
        if threshold > 0
        else "always answers a class (--min-confidence 0)"
    )
    return (
        "<h2>Calibration</h2><p>Temperature scaling on the validation split (fine-tuned: "
        f"{html.escape(tuned['temperature_from'])}); the exported model includes "
        "it. Expected calibration error (ECE) on the test split:</p>"
        "<table><tr><th>model</th><th>temperature</th><th>ECE before</th><th>ECE after</th>"
        f"</tr>{rows}</table>"
        + img_tag(reliability_diagram(tuned), "reliability diagram")
        + f"<p>The exported model {answer}. Coverage and accuracy on the test split:</p>"
        "<table><tr><th>min confidence</th><th>answered</th><th>accuracy of answers</th>"
        f"</tr>{coverage}</table>"
    )


def _figure(uri: str, caption: str) -> str:
    return f"<figure>{img_tag(thumbnail(uri), uri)}<figcaption>{caption}</figcaption></figure>"


def label_issues_section(evaluation: Evaluation) -> str:
    """The likely-mislabelled train/validation images, most likely first, with thumbnails."""
    found = evaluation.label_issues
    if found.get("skipped"):
        return f"<h2>Likely label errors</h2><p>Not searched: {found['skipped']}.</p>"
    issues = found["issues"]
    figures = "".join(
        _figure(
            i["uri"],
            f"given: {html.escape(i['given'])}<br>likely: {html.escape(i['suggested'])} "
            f"(p given {i['score']:.2f})",
        )
        for i in issues[:SHOWN]
    )
    return (
        f"<h2>Likely label errors</h2><p>{len(issues)} train/validation images flagged by "
        f"confident learning on out-of-fold predictions from the cached features (estimated "
        f"{found['estimated']} wrong labels); all are in <code>label_issues.csv</code>. Check "
        "them, fix the labels or pass the file (trimmed) to <code>--exclude</code>.</p>" + figures
    )


def near_duplicates_section(evaluation: Evaluation) -> str:
    """Test images with a near-twin in train/validation, and the accuracy without them."""
    found = evaluation.near_duplicates
    pairs = "".join(
        _figure(p["test"], "test")
        + _figure(p["train"], f"train/val, similarity {p['similarity']:.3f}")
        for p in found["leaked"][:SHOWN]
    )
    without = found["accuracy_without_leaked"]
    accuracy = f"{without:.4f}" if without is not None else "–"
    return (
        f"<h2>Near-duplicates</h2><p>Feature cosine similarity >= {found['threshold']:.2f}: "
        f"{found['leaked_count']} test images have a near-twin in train/validation (leakage: "
        f"they flatter the test accuracy); fine-tuned test accuracy without them: {accuracy} "
        f"(with them: {evaluation.fine_tuned['accuracy']:.4f}). "
        f"{found['within_class_count']} near-duplicate pairs within a class in "
        "train/validation.</p>" + pairs
    )


def trust_sections(evaluation: Evaluation) -> list[str]:
    """The three sections, in report order."""
    return [
        calibration_section(evaluation),
        near_duplicates_section(evaluation),
        label_issues_section(evaluation),
    ]
