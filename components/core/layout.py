"""Artifact layouts: every file name kftransfer writes, defined once, with small readers.

In the spirit of TFX's `standard_component_specs.py`, no other module spells a file name.

    split folder (split_data)          train.csv validation.csv test.csv (uri,label,sha256)
                                       labels.json (class names in model output order)
                                       stats.json (counts, skipped files, notes)
    features folder (extraction)       manifest.json, <split>/NNNNN.npz shards
    stage folder (head, fine-tuning)   model.keras, history.json, config.json, summary.json
    evaluation (evaluate_model)        one JSON document (`evaluation.json` when exported)
    TFLite folder (evaluate_model)     tflite.json (the judgement, or mode none)[, model.tflite]
    export destination                 latest (the current version's name), and per version
                                       saved_model.pb + variables/, model.keras, labels.json,
                                       model_card.md, evaluation.json[, model.tflite]
    cache entry (features, pixels)     spec.json, chunks/<id>.npz + chunks/<id>.keys
    checkpoint folder                  state.json, last.weights.h5, best.weights.h5
"""

import csv
import hashlib
import io
import json
from dataclasses import asdict, dataclass, fields

from kftransfer.components.core import folders, storage
from kftransfer.components.core.errors import UserError

SPLITS = ("train", "validation", "test")

# split folder
LABELS_FILE = "labels.json"
STATS_FILE = "stats.json"
CSV_HEADER = ("uri", "label", "sha256")

# features folder
MANIFEST_FILE = "manifest.json"
SHARD_SUFFIX = ".npz"

# stage folder (trained head, fine-tuned model)
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
KERAS_ARCHIVE_CONFIG = "config.json"  # the model's config inside a .keras zip (Keras' name)

# export destination and version
LATEST = "latest"
SAVED_MODEL_FILE = "saved_model.pb"
CARD_FILE = "model_card.md"
EVALUATION_FILE = "evaluation.json"
SERVING_FILE = "serving.json"  # temperature, min_confidence: what serving answers
UNKNOWN = "unknown"  # the label served below the minimum confidence
TFLITE_FILE = "model.tflite"

# TFLite folder: the judged flatbuffer the export copies
TFLITE_REPORT_FILE = "tflite.json"

# cache entries (chunk stores): features under <cache>/<key>/, pixels under <cache>/pixels/<key>/
PIXELS_FOLDER = "pixels"
CACHE_SPEC_FILE = "spec.json"
CACHE_CHUNKS = "chunks"
CHUNK_ROWS_SUFFIX = ".npz"
CHUNK_KEYS_SUFFIX = ".keys"  # written last: a chunk counts once its keys exist

# checkpoint folder: state.json names the weight files it commits (`<kind>-<epoch>`)
STATE_FILE = "state.json"
LAST_WEIGHTS = "last-{epoch}.weights.h5"
BEST_WEIGHTS = "best-{epoch}.weights.h5"


def unknown_is_ambiguous(labels: list[str], min_confidence: float) -> bool:
    """Whether a class is named `UNKNOWN` while the model also answers it when unsure."""
    return min_confidence > 0 and UNKNOWN in labels


def split_csv(split: str) -> str:
    """The file of one split's rows: `train.csv`, `validation.csv` or `test.csv`."""
    return f"{split}.csv"


def shard_file(split: str, index: int) -> str:
    """The path of a feature shard inside a features folder."""
    return f"{split}/{index:05d}{SHARD_SUFFIX}"


# --------------------------------------------------------------------------- split folder


@dataclass(frozen=True)
class Row:
    """One image of the split: where it is, its class, its content hash and its split."""

    uri: str
    label: str
    sha256: str
    split: str


def split_files(labels: list[str], rows: list[Row], stats: dict) -> dict[str, bytes]:
    """The split folder's files by name: three CSVs, `labels.json`, `stats.json`."""
    files = {}
    for split in SPLITS:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows((r.uri, r.label, r.sha256) for r in rows if r.split == split)
        files[split_csv(split)] = buffer.getvalue().encode()
    files[LABELS_FILE] = json.dumps(labels, indent=1).encode()
    files[STATS_FILE] = json.dumps(stats, indent=1).encode()
    return files


def write_split_folder(uri: str, labels: list[str], rows: list[Row], stats: dict) -> None:
    """Writes a split folder all at once (see `folders.replace_folder`; `stats.json` last)."""
    folders.replace_folder(uri, split_files(labels, rows, stats), marker=STATS_FILE)


def read_labels(splits_uri: str) -> list[str]:
    """The ordered class names of a split folder."""
    return storage.read_json(storage.join(splits_uri, LABELS_FILE))


def read_stats(splits_uri: str) -> dict:
    """The statistics of a split folder (counts, skipped files, notes)."""
    return storage.read_json(storage.join(splits_uri, STATS_FILE))


def split_rule(stats: dict) -> dict:
    """What decides an image's split: the layout, and the seed and fractions of the hash rule.

    Two splits of one rule put every image they share in the same split (an image's split
    is a function of its content, `split.assign_split`), so a model trained on one never
    trained on the other's test images. Another seed or fraction moves images between
    splits. (A pre-split tree's folders are the user's to keep apart.)
    """
    by = "folders" if stats["layout"] == "presplit" else "content hash"
    return {"split_by": by, **stats.get("config", {})}


def split_rule_change(recorded: dict, rule: dict) -> str:
    """How `rule` differs from a model's `recorded` split rule, e.g. `seed 0 -> 1` ('' if not)."""
    return ", ".join(
        f"{key} {recorded.get(key)} -> {value}"
        for key, value in rule.items()
        if recorded.get(key) != value
    )


def read_rows(splits_uri: str, split: str) -> list[Row]:
    """The rows of one split (`train`, `validation` or `test`) of a split folder."""
    text = storage.read_text(storage.join(splits_uri, split_csv(split)))
    reader = csv.DictReader(io.StringIO(text))
    return [Row(r["uri"], r["label"], r["sha256"], split) for r in reader]


# --------------------------------------------------------------------------- features folder


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that determines a feature row besides the image itself.

    The feature cache is keyed by it, parallel extraction parts must agree on it, and
    fine-tuning rebuilds the backbone from it (with the manifest's `weights`).
    """

    backbone: str
    weights_fingerprint: str
    image_size: int
    pooling: str
    preprocessing: str
    feature_layer: str
    dtype: str
    decode: str  # images.DECODE_VERSION: the pixels the features were computed from

    def to_json(self) -> dict:
        """The fields as a dict (they are stored flat in the manifest)."""
        return asdict(self)

    @classmethod
    def from_manifest(cls, manifest: dict) -> "FeatureSpec":
        """The spec stored in a features manifest (or a cache entry's `spec.json`)."""
        return cls(**{f.name: manifest.get(f.name, "") for f in fields(cls)})

    def cache_key(self) -> str:
        """The folder name of this spec's feature cache entry."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def network_change(self, recorded: dict) -> str:
        """How this spec's network and inputs differ from a model's `recorded` spec.

        E.g. `pooling avg -> max, image_size 224 -> 160` ('' if the same). The feature dtype
        is left out: it is how features are stored, not what the network computes.
        """
        changes = []
        for name, value in self.to_json().items():
            if name != "dtype" and recorded.get(name) != value:
                was, now = (str(v)[:12] for v in (recorded.get(name), value))  # short hashes
                changes.append(f"{name} {was} -> {now}")
        return ", ".join(changes)


def read_manifest(features_uri: str) -> dict:
    """The manifest of a features folder.

    Raises:
        UserError: the folder has no manifest.
    """
    try:
        return storage.read_json(storage.join(features_uri, MANIFEST_FILE))
    except storage.NotFoundError as err:
        raise UserError(f"{features_uri} is not a features folder (no {MANIFEST_FILE})") from err


def write_manifest(features_uri: str, manifest: dict) -> None:
    """Writes the manifest (last, once every shard is written)."""
    storage.write_json(storage.join(features_uri, MANIFEST_FILE), manifest)


# --------------------------------------------------------------------------- stage folder


def stage_model(stage_uri: str) -> str:
    """The model file of a trained stage's folder (the head's, or the fine-tuned model's)."""
    return storage.join(stage_uri, MODEL_FILE)


def read_history(stage_uri: str) -> dict[str, list[float]]:
    """Every epoch's metrics of a trained stage."""
    return storage.read_json(storage.join(stage_uri, HISTORY_FILE))


def read_stage_config(stage_uri: str) -> dict:
    """The hyper-parameters a stage was trained with."""
    return storage.read_json(storage.join(stage_uri, CONFIG_FILE))


def read_stage_summary(stage_uri: str) -> dict:
    """A trained stage's headline numbers (validation accuracy and loss, epochs, ...).

    Empty for a stage folder without them (written by a release before 0.2).
    """
    try:
        return storage.read_json(storage.join(stage_uri, SUMMARY_FILE))
    except storage.NotFoundError:
        return {}


def write_stage_summary(stage_uri: str, summary: dict) -> None:
    """Rewrites a trained stage's summary."""
    storage.write_json(storage.join(stage_uri, SUMMARY_FILE), summary)


def write_stage_records(stage_uri: str, history: dict, config: dict, summary: dict) -> None:
    """Writes a stage's history, config and summary (its model is saved by model_io)."""
    storage.write_json(storage.join(stage_uri, HISTORY_FILE), history)
    storage.write_json(storage.join(stage_uri, CONFIG_FILE), config)
    storage.write_json(storage.join(stage_uri, SUMMARY_FILE), summary)
