"""The classifier head, trained on cached bottleneck features in seconds.

A head is Dense(+ReLU)+Dropout blocks and an output layer: sigmoid for two classes,
softmax otherwise. It trains on the feature shards streamed by tf.data (a feature set
larger than `IN_MEMORY_BYTES` is never loaded whole), with early stopping on the
validation loss, the best weights restored, optional balanced class weights, and
resumable checkpoints.
"""

from dataclasses import dataclass, replace

import keras
import numpy as np
import tensorflow as tf

from kftransfer.components.core import shards
from kftransfer.components.core.checkpoints import ResumableTraining, fingerprint_of
from kftransfer.components.core.classifier import compile_classifier
from kftransfer.components.core.config import HeadConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.head_sweep import sweep_heads, sweep_metrics
from kftransfer.components.core.layout import FeatureSpec, read_manifest
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.recipe import learning_rate, make_optimizer, steps_per_epoch
from kftransfer.components.core.training import (
    EpochLogger,
    StageOutputs,
    TrainResult,
    fit,
    tensorboard_callbacks,
)

IN_MEMORY_BYTES = 512 << 20  # feature sets up to this size are trained from memory
SHUFFLE_ROWS = 10_000  # shuffle buffer when streaming shards
VARIANCE_FLOOR = 0.01  # of the mean feature variance, for standardising features


def build_head(
    dim: int,
    num_classes: int,
    config: HeadConfig,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
) -> keras.Model:
    """Features `[B, dim]` -> class probabilities (`[B, 1]` sigmoid for two classes).

    With `config.head_normalize`, the features are first standardised with the given
    per-feature `mean` and `variance` (a fixed Normalization layer, saved with the head).
    """
    features = keras.Input((dim,), name="features")
    x = features
    if config.head_normalize:
        if mean is None:
            mean, variance = np.zeros(dim), np.ones(dim)
        x = keras.layers.Normalization(mean=mean, variance=variance, name="head_normalize")(x)
    for i, units in enumerate(config.hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        x = keras.layers.Dropout(config.head_dropout, name=f"head_dropout_{i}")(x)
    binary = num_classes == 2
    outputs = keras.layers.Dense(
        1 if binary else num_classes,
        activation="sigmoid" if binary else "softmax",
        dtype="float32",
        name="head_output",
    )(x)
    return keras.Model(features, outputs, name="head")


def features_dataset(
    folder: str, split: str, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Batches of `(features float32, labels)` of one split of a features folder.

    Small feature sets are loaded into memory; larger ones are streamed shard by shard
    (shards in a new order each epoch, rows mixed in a SHUFFLE_ROWS buffer).
    """
    manifest = read_manifest(folder)
    entries = manifest["splits"][split]["shards"]
    rows = sum(e["rows"] for e in entries)
    if rows * manifest["dim"] * np.dtype(manifest["dtype"]).itemsize <= IN_MEMORY_BYTES:
        features, labels = shards.load_split(folder, split)
        dataset = tf.data.Dataset.from_tensor_slices((features.astype(np.float32), labels))
        if shuffle_seed is not None:
            dataset = dataset.shuffle(max(rows, 1), seed=shuffle_seed)
    else:
        dataset = _streamed_rows(folder, entries, manifest["dim"], manifest["dtype"], shuffle_seed)
    dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y))
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _streamed_rows(folder, entries, dim, dtype, shuffle_seed) -> tf.data.Dataset:
    epoch = [0]

    def generate():
        order = np.arange(len(entries))
        if shuffle_seed is not None:
            np.random.default_rng([shuffle_seed, epoch[0]]).shuffle(order)
            epoch[0] += 1
        for i in order:
            arrays = shards.read_shard(folder, entries[i])
            yield arrays["features"], arrays["labels"]

    signature = (tf.TensorSpec([None, dim], tf.as_dtype(dtype)), tf.TensorSpec([None], tf.int32))
    rows = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    if shuffle_seed is not None:
        rows = rows.shuffle(SHUFFLE_ROWS, seed=shuffle_seed)
    return rows


@dataclass
class FeatureStatistics:
    """Per-feature mean and variance, and rows per class, of the train split."""

    mean: np.ndarray
    variance: np.ndarray
    class_counts: np.ndarray

    def balanced_class_weights(self) -> dict[int, float]:
        """`n / (classes * n_c)` per class (a class without rows gets weight 1)."""
        total, classes = self.class_counts.sum(), len(self.class_counts)
        return {
            c: float(total / (classes * n)) if n else 1.0 for c, n in enumerate(self.class_counts)
        }


def train_statistics(folder: str, num_classes: int) -> FeatureStatistics:
    """Streams the train split's shards once (float64 sums) for `FeatureStatistics`."""
    total = squares = None
    counts = np.zeros(num_classes, dtype=np.int64)
    for arrays in shards.iter_shards(folder, "train"):
        features = arrays["features"].astype(np.float64)
        total = features.sum(0) + (0 if total is None else total)
        squares = (features**2).sum(0) + (0 if squares is None else squares)
        counts += np.bincount(arrays["labels"], minlength=num_classes)
    rows = max(int(counts.sum()), 1)
    mean = total / rows
    variance = np.maximum(squares / rows - mean**2, 0.0)
    # Nearly dead features would be scaled up enormously; give them 1% of the typical
    # variance instead, so fine-tuning cannot blow them up into huge gradients.
    floor = VARIANCE_FLOOR * float(variance.mean()) if variance.any() else 1.0
    return FeatureStatistics(mean, np.maximum(variance, floor), counts)


def head_optimizer(config: HeadConfig, rows: int) -> keras.optimizers.Optimizer:
    """The head's optimizer: its learning rate under its schedule, for `rows` train rows."""
    rate = learning_rate(
        config.head_learning_rate,
        config.head_schedule,
        config.head_epochs,
        steps_per_epoch(rows, config.head_batch_size),
        config.head_warmup_epochs,
    )
    return make_optimizer(config.head_optimizer, rate)


def train_head(
    features_uri: str,
    config: HeadConfig,
    checkpoint_uri: str = "",
    tensorboard_uri: str = "",
    callbacks: list[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Trains a head on the train split's features, early-stopped on the validation split.

    Args:
        features_uri: a features folder (see `features.extract_features`).
        config: the head's hyper-parameters.
        checkpoint_uri: where to checkpoint every epoch, to resume after preemption.
        tensorboard_uri: TensorBoard log folder; empty for none.
        callbacks: extra Keras callbacks, run after the checkpointing one.
    """
    keras.utils.set_random_seed(config.seed)
    manifest = read_manifest(features_uri)
    num_classes, dim = len(manifest["labels"]), manifest["dim"]
    train = features_dataset(
        features_uri, "train", config.head_batch_size, shuffle_seed=config.seed
    )
    validation = features_dataset(features_uri, "validation", config.head_batch_size)
    statistics = train_statistics(features_uri, num_classes)
    model = build_head(dim, num_classes, config, statistics.mean, statistics.variance)
    rows = manifest["splits"]["train"]["rows"]
    compile_classifier(
        model, head_optimizer(config, rows), config.head_label_smoothing, steps_per_execution=16
    )
    shard_hashes = {
        s: [e["sha256"] for e in info["shards"]] for s, info in manifest["splits"].items()
    }
    resumable = ResumableTraining(
        checkpoint_uri, fingerprint_of("head", shard_hashes, config.to_dict()), config.head_patience
    )
    initial_epoch = resumable.resume(model)
    logger = EpochLogger("head", rows, config.head_epochs)
    weights = statistics.balanced_class_weights() if config.class_weight == "balanced" else None
    callbacks = [logger, resumable, *tensorboard_callbacks(tensorboard_uri), *callbacks]
    LOGGER.info(
        "head: %s on %d features, %d train rows, %d classes",
        *(config.hidden_units, dim, rows, num_classes),
    )
    if not resumable.ended:
        fit(model, train, validation, config.head_epochs, initial_epoch, callbacks, weights)
    resumable.finish(model)
    return TrainResult(model, resumable.history, resumable.state["best_epoch"], logger.seconds)


def _require_a_finite_epoch(result: TrainResult, config: HeadConfig) -> None:
    """Raises UserError when no epoch gave a finite validation loss (training diverged).

    A head has no starting point to fall back on (fine-tuning keeps the trained head), and
    its weights are then NaN: the step stops here, naming the fix. (A diverged trial of a
    sweep just loses to the others.)
    """
    if result.best_epoch is not None:
        return
    history, epochs = result.history, len(result.history.get("loss", []))
    last = [f"{name} {history[name][-1]:g}" for name in ("loss", "val_loss") if history.get(name)]
    raise UserError(
        f"head training diverged ({', '.join(last)} after {epochs} epoch"
        f"{'' if epochs == 1 else 's'}), leaving no usable head: lower --head-learning-rate "
        f"(now {config.head_learning_rate:g})"
    )


def train_head_stage(features_uri: str, config: HeadConfig, outputs: StageOutputs) -> dict:
    """Trains the head (or sweeps heads) and writes its stage folder and curves.

    With `config.head_sweep` > 1 the stage keeps the sweep's winner, its config, and the
    trials (`sweep` in the summary, flat `sweep_*` numbers for KFP metrics).

    Returns:
        The stage's summary.
    """
    origin = features_origin(read_manifest(features_uri))
    if config.head_sweep > 1:
        (result, chosen), trials = sweep_heads(
            features_uri, config, train_head, outputs.checkpoint_uri, outputs.tensorboard_uri
        )
        _require_a_finite_epoch(result, chosen)
        extra = {**sweep_metrics(trials), "sweep": trials, **origin}
        kept = replace(chosen, head_sweep=config.head_sweep)  # found by a sweep
        return outputs.save(result, kept, "Head training (sweep winner)", extra)
    result = train_head(features_uri, config, outputs.checkpoint_uri, outputs.tensorboard_uri)
    _require_a_finite_epoch(result, config)
    return outputs.save(result, config, "Head training", origin)


def features_origin(manifest: dict) -> dict[str, str]:
    """What a head was trained on: its backbone, and the key of its features' settings."""
    return {
        "backbone": manifest["backbone"],
        "features_key": FeatureSpec.from_manifest(manifest).cache_key(),
    }
