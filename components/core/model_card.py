"""The model card: what a reader of an exported version needs to know, in markdown."""

import datetime
import json
import re

# What markdown (GitHub's, GitLab's) reads as markup, HTML, math or a table's cell border.
MARKUP = re.compile(r"([\\`*_\[\]<>|~&$])")


def _literal(text: str) -> str:
    """`text` (a class name, a verdict line) shown as written, on one line.

    Class names come from folder names and CSVs: `pipe | cell` split a table row,
    `<img ...>` rendered as HTML, a newline cut a row in two.
    """
    one_line = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(text)
    )
    return MARKUP.sub(r"\\\1", one_line)


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "–" if value is None else str(value)


def model_card(
    evaluation: dict, manifest: dict, stats: dict, hyper_parameters: dict[str, dict], version: str
) -> str:
    """Renders the card of one exported version.

    Args:
        evaluation: `Evaluation.to_json()`.
        manifest: the features manifest (backbone, weights, image size, pooling).
        stats: the split's `stats.json` (source, counts, skipped files).
        hyper_parameters: stage name -> its config as a dict.
        version: the version's name.
    """
    labels = evaluation["labels"]
    size = manifest["image_size"]
    verdict = "\n".join(f"- {_literal(reason)}" for reason in evaluation["verdict"]["reasons"])
    names = ", ".join(_literal(json.dumps(label, ensure_ascii=False)) for label in labels)
    return f"""# Model card: kftransfer image classifier, version {version}

Exported {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} by kftransfer.

## Use

Classifies an RGB image into one of {len(labels)} classes: {names}.

`saved_model.pb` (TF Serving / KServe): signature `serving_default` takes `image_bytes`
(encoded JPEG/PNG/GIF/BMP/WebP, a batch) and returns `probabilities` [N, {len(labels)}]
and `label` [N]; `serve_images` takes uint8 images [N, {size}, {size}, 3].
`model.keras` (Keras 3; load it with `kftransfer` installed, through
`kftransfer.components.core.model_io.load_model`) takes uint8 images
[N, {size}, {size}, 3]. Every output is `probabilities` [N, {len(labels)}] in the order of
`labels.json`. Decoding and resizing match training exactly:
`serving_default` turns a JPEG upright by its EXIF orientation, as training did, so uint8
images given to the other inputs (and to `model.tflite`) must already be upright; an alpha
channel is dropped, as in training. `label` is `unknown` below the minimum confidence the
version was exported with (`serving.json` records it; editing that file does not change
the SavedModel).

{_data(stats, labels)}

{_model(manifest, hyper_parameters)}

{_test_metrics(evaluation)}

{_trust(evaluation)}
{_tflite(evaluation)}
## Verdict: {"blessed" if evaluation["verdict"]["blessed"] else "not blessed"}

{verdict}

## Limitations

Measured on {evaluation["fine_tuned"]["examples"]} held-out test images from the same source as the
training data; accuracy on other data (other cameras, lighting, classes not
listed above) is unknown. An image of something else still gets one of the classes
above unless its calibrated confidence is below the minimum confidence.
"""


def _data(stats: dict, labels: list[str]) -> str:
    """Where the images came from, how they were split, and the counts per class."""
    counts = [(_literal(label), *stats["counts"][label].values()) for label in labels]
    return f"""## Data

- source: `{stats.get("source", "?")}` ({stats.get("layout", "?")})
- split by content hash, seed {stats.get("config", {}).get("seed", "?")}
- {len(stats.get("skipped", []))} files skipped by validation

{_table(("class", "train", "validation", "test"), counts)}"""


def _model(manifest: dict, hyper_parameters: dict[str, dict]) -> str:
    """The backbone, its input and features, and every stage's settings."""
    size = manifest["image_size"]
    settings = "\n".join(
        f"- **{stage}**: " + ", ".join(f"`{k}={v}`" for k, v in sorted(config.items()))
        for stage, config in hyper_parameters.items()
    )
    return f"""## Model

- backbone `{manifest["backbone"]}`, weights `{manifest["weights"]}` (fingerprint
  `{manifest["weights_fingerprint"][:16]}`)
- {size}x{size} px input, `{manifest["preprocessing"]}` preprocessing, `{manifest["pooling"]}`
  pooling, {manifest["dim"]} features
- a dense head trained on cached features, then fine-tuned with the top of the backbone

{settings}"""


def _test_metrics(evaluation: dict) -> str:
    """Every judged model's test metrics side by side, and the fine-tuned one's per class."""
    models = {"head only": evaluation["head"], "fine-tuned": evaluation["fine_tuned"]}
    if evaluation.get("production"):
        models[f"production ({evaluation['production_version']})"] = evaluation["production"]
    names = [
        ("accuracy", "accuracy"),
        (f"top-{evaluation['fine_tuned']['top_k']} accuracy", "top_k_accuracy"),
        ("macro F1", "macro_f1"),
        ("log loss", "log_loss"),
    ]
    metric_rows = [(name, *(_fmt(m[key]) for m in models.values())) for name, key in names]
    per_class = evaluation["fine_tuned"]["per_class"]
    class_rows = [
        (
            _literal(label),
            *(_fmt(per_class[label][k]) for k in ("precision", "recall", "f1", "support")),
        )
        for label in evaluation["labels"]
    ]
    return f"""## Test metrics

{_table(("metric", *models), metric_rows)}

Per class (fine-tuned):

{_table(("class", "precision", "recall", "F1", "support"), class_rows)}"""


def _trust(evaluation: dict) -> str:
    """Calibration, abstention, label issues and leakage, as the card's "Trust" section."""
    calibration = evaluation.get("calibration", {}).get("fine_tuned")
    if not calibration:
        return ""
    threshold = calibration["min_confidence"]
    duplicates, issues = evaluation["near_duplicates"], evaluation["label_issues"]
    without = duplicates["accuracy_without_leaked"]
    return f"""## Trust

- probabilities calibrated by temperature scaling (T = {calibration["temperature"]:.3f},
  {calibration["temperature_from"]}): expected calibration error on test
  {calibration["ece_before"]:.4f} before, {calibration["ece_after"]:.4f} after
- `label` is `unknown` when the top probability is below {threshold:.3f}
  ({calibration["min_confidence_chosen_by"]}; 0 = always a class)
- {len(issues["issues"])} train/validation images flagged as likely mislabelled
- {duplicates["leaked_count"]} test images have a near-duplicate in train/validation (feature
  cosine >= {duplicates["threshold"]:.2f}); test accuracy without them:
  {_fmt(without)}"""


def tflite_figures(report: dict) -> dict:
    """The TFLite figures quoted beside the card: the run summary's, the export artifact's.

    A model the converter refused has its mode and the converter's error instead.
    """
    if "error" in report:
        return {"mode": report["mode"], "error": report["error"]}
    return {
        "mode": report["mode"],
        "accuracy": report["accuracy"],
        "saved_model_accuracy": report["saved_model_accuracy"],
        "drop_points": report["drop_points"],
        "mib": report["bytes"] / 2**20,
    }


def _tflite(evaluation: dict) -> str:
    """The card's TFLite section ('' without `--tflite`)."""
    report = evaluation.get("tflite")
    if not report:
        return ""
    return (
        f"\n## TFLite\n\n`model.tflite` ({report['mode']}, {report['bytes'] / 2**20:.1f} MiB): "
        f"test accuracy {report['accuracy']:.4f} vs {report['saved_model_accuracy']:.4f} for "
        f"the SavedModel on the same {report['test_images']} images "
        f"({report['drop_points']:+.2f} points lost); max |probability difference| "
        f"{report['max_abs_difference']:.2e}. It takes uint8 images [N, S, S, 3] as "
        "`serve_images` does and returns float32 `probabilities` in the order of "
        "`labels.json`; it holds no class names and no minimum confidence (apply "
        "`serving.json`'s yourself)"
        + (", and int8 probabilities come in steps of 1/256" if report["mode"] == "int8" else "")
        + ".\n"
    )
