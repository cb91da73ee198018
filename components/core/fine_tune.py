"""Fine-tuning: raw images -> preprocessing -> backbone -> the trained head, top layers unfrozen.

The head starts from the weights trained on cached features (a random head's large
gradients would wreck the pretrained features), BatchNormalization layers stay frozen and
so in inference mode (`fine_tune_model.set_trainable`), the model is compiled
after every change of `trainable`, the learning rate is small, and augmentation applies to
the training input only. The saved model takes raw uint8 RGB images and contains its
preprocessing.
"""

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from kftransfer.components.core import pixels, storage
from kftransfer.components.core.checkpoints import ResumableTraining, fingerprint_of
from kftransfer.components.core.chunk_store import ChunkStore, pixel_store
from kftransfer.components.core.classifier import accuracy_name, compile_classifier
from kftransfer.components.core.config import FineTuneConfig
from kftransfer.components.core.devices import (
    deterministic_ops,
    distribution_strategy,
    dtype_policy,
    mixed_precision_wanted,
)
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.features import build_backbone, extract_config
from kftransfer.components.core.fine_tune_model import (
    augmentation,
    build_fine_tune_model,
    set_trainable,
)
from kftransfer.components.core.layout import (
    FeatureSpec,
    read_manifest,
    read_rows,
    read_stats,
    split_rule,
    stage_model,
)
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.recipe import (
    ema_callbacks,
    layer_decay_scales,
    learning_rate,
    make_optimizer,
    steps_per_epoch,
)
from kftransfer.components.core.training import (
    EpochLogger,
    StageOutputs,
    TrainResult,
    fit,
    quiet_unknown_length,
    tensorboard_callbacks,
)
from kftransfer.components.core.warm_start import Start, warm_start


@dataclass
class FineTuneResult(TrainResult):
    """A fine-tuned model, with its accuracy before fine-tuning and what was trained."""

    initial_val_accuracy: float | None = None
    trainable_layers: list[str] | None = None
    pixels: dict[str, int] | None = None  # images decoded into / reused from the pixel store
    start: Start | None = None  # what the weights started from (the head, or production)


def _datasets(store: ChunkStore, splits_uri: str, labels: list[str], batch: int, config):
    """Train (shuffled, augmented) and validation batches of `(images, labels)` from pixels."""
    ids = {label: i for i, label in enumerate(labels)}
    rows = {split: read_rows(splits_uri, split) for split in ("train", "validation")}
    everything = rows["train"] + rows["validation"]
    size = store.spec["image_size"]
    counts = pixels.fill(store, [r.uri for r in everything], [r.sha256 for r in everything], size)

    def batches(split: str, **kwargs):
        shas, labels = [r.sha256 for r in rows[split]], [ids[r.label] for r in rows[split]]
        return pixels.dataset(store, shas, labels, batch, **kwargs).map(lambda x, y, _: (x, y))

    train = batches("train", shuffle_seed=config.seed, augment=augmentation(config.augmentation))
    return train, batches("validation"), len(rows["train"]), counts


@contextlib.contextmanager
def pixel_cache_root(cache_uri: str) -> Iterator[str]:
    """`cache_uri`, or for the block a temporary folder of this run's decoded pixels."""
    if cache_uri:
        yield cache_uri
        return
    with tempfile.TemporaryDirectory(prefix="kft-pixels-") as tmp:
        yield tmp


def _build(manifest: dict, head_uri: str, config: FineTuneConfig, strategy, batch: int):
    """The compiled fine-tuning model: backbone (checked) + the trained head, top unfrozen.

    `batch` is the global batch size; with the manifest's train rows it sets the steps per
    epoch of the learning-rate schedule.
    """
    with strategy.scope(), dtype_policy(mixed_precision_wanted(config.mixed_precision)):
        backbone = build_backbone(extract_config(manifest))
        if backbone.fingerprint != manifest["weights_fingerprint"]:
            raise UserError(
                f"the weights of {backbone.name} differ from those the features were extracted "
                f"with ({manifest['weights']}): re-run extraction"
            )
        model = build_fine_tune_model(backbone, load_model(head_uri), manifest["pooling"])
        trained = set_trainable(backbone, config.unfreeze)
        steps = steps_per_epoch(manifest["splits"]["train"]["rows"], batch)
        optimizer = fine_tune_optimizer(config, steps, backbone.layers())
        compile_classifier(model, optimizer, config.fine_tune_label_smoothing)
    LOGGER.info("fine-tune: %d backbone layers trainable, from %s", len(trained), trained[:1])
    return model, backbone, trained


def fine_tune_optimizer(config: FineTuneConfig, steps: int, layers: list[keras.layers.Layer]):
    """The recipe's optimizer: schedule over `steps` per epoch, layer decay over `layers`, EMA."""
    rate = learning_rate(
        config.fine_tune_learning_rate,
        config.fine_tune_schedule,
        config.fine_tune_epochs,
        steps,
        config.fine_tune_warmup_epochs,
    )
    return make_optimizer(
        config.fine_tune_optimizer,
        rate,
        config.momentum,
        config.ema_momentum,
        layer_decay_scales(layers, config.layer_decay),
    )


def fine_tune(
    splits_uri: str,
    features_uri: str,
    head_uri: str,
    config: FineTuneConfig,
    checkpoint_uri: str = "",
    tensorboard_uri: str = "",
    callbacks: list[keras.callbacks.Callback] = (),
    cache_uri: str = "",
    export_uri: str = "",
) -> FineTuneResult:
    """Fine-tunes backbone + head on the train images, early-stopped on validation.

    Args:
        splits_uri: the split folder (images and labels).
        features_uri: the features folder the head was trained on (names the backbone).
        head_uri: the trained head's `.keras` file.
        config: the fine-tuning hyper-parameters.
        checkpoint_uri: where to checkpoint every epoch, to resume after preemption.
        tensorboard_uri: TensorBoard log folder; empty for none.
        callbacks: extra Keras callbacks, run after the checkpointing one.
        cache_uri: the cache root whose pixel store holds the decoded images (filled with
            the missing ones); empty for a temporary store of this run's.
        export_uri: with `config.warm_start`, start from its latest version when that is
            the same network (`warm_start.warm_start`).
    """
    keras.utils.set_random_seed(config.seed)
    deterministic_ops(config.determinism)
    manifest = read_manifest(features_uri)
    strategy = distribution_strategy()
    batch = config.fine_tune_batch_size * strategy.num_replicas_in_sync
    model, backbone, trained = _build(manifest, head_uri, config, strategy, batch)
    start = Start("", "from the trained head")
    if config.warm_start:
        rule = split_rule(read_stats(splits_uri))
        spec = FeatureSpec.from_manifest(manifest)
        start = warm_start(
            model, manifest["labels"], export_uri, rule, spec, config.cold_start_every
        )
    head_sha = hashlib.sha256(storage.read_bytes(head_uri)).hexdigest()
    resumable = ResumableTraining(
        checkpoint_uri,
        fingerprint_of("fine_tune", manifest["splits"], head_sha, start.version, config.to_dict()),
        config.fine_tune_patience,
    )
    with pixel_cache_root(cache_uri) as root:
        store = pixel_store(root, backbone.image_size)
        train, val, rows, decoded = _datasets(store, splits_uri, manifest["labels"], batch, config)
        logger = _train(model, train, val, rows, resumable, config, tensorboard_uri, callbacks)
    baseline = resumable.state.get("baseline")
    return FineTuneResult(
        model,
        resumable.history,
        resumable.state["best_epoch"],
        logger.seconds,
        baseline,
        initial_val_accuracy=baseline[f"val_{accuracy_name(model)}"] if baseline else None,
        trainable_layers=trained,
        pixels=decoded,
        start=start,
    )


def _train(model, train, val, rows, resumable, config, tensorboard_uri, callbacks) -> EpochLogger:
    """Resumes or measures the starting point, fits, and keeps the best weights."""
    initial_epoch = resumable.resume(model)
    if initial_epoch == 0:
        with quiet_unknown_length():
            scores = model.evaluate(val, verbose=0, return_dict=True)
        resumable.set_baseline(model, scores)
        LOGGER.info(
            "fine-tune: validation accuracy before the first step %.4f (the head's)",
            scores[accuracy_name(model)],
        )
    logger = EpochLogger("fine-tune", rows, config.fine_tune_epochs)
    averaging = ema_callbacks(model, initial_epoch)  # before `resumable`: it checkpoints EMA
    callbacks = [
        logger,
        *averaging,
        resumable,
        *tensorboard_callbacks(tensorboard_uri),
        *callbacks,
    ]
    if not resumable.ended:
        fit(model, train, val, config.fine_tune_epochs, initial_epoch, callbacks)
    resumable.finish(model)
    return logger


def trainable_summary(model: keras.Model) -> dict[str, int]:
    """Counts of trainable and frozen weights (parameters)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable_parameters": trainable, "frozen_parameters": frozen}


def fine_tune_stage(
    splits_uri: str,
    features_uri: str,
    head_stage: str,
    config: FineTuneConfig,
    outputs: StageOutputs,
    cache_uri: str = "",
    export_uri: str = "",
) -> dict:
    """Fine-tunes from the trained head's stage folder; writes the model's stage folder.

    `cache_uri`'s pixel store holds the decoded images; `export_uri` is where a warm start
    looks for the production model (see `fine_tune`).

    Returns:
        The summary: validation metrics before and after, epochs, trainable parameters.
    """
    result = fine_tune(
        splits_uri,
        features_uri,
        stage_model(head_stage),
        config,
        outputs.checkpoint_uri,
        outputs.tensorboard_uri,
        cache_uri=cache_uri,
        export_uri=export_uri,
    )
    extra = {
        **trainable_summary(result.model),
        "start": result.start.note,
        "warm_starts": result.start.warm_starts,
    }
    extra.update({f"pixels_{k}": v for k, v in (result.pixels or {}).items()})
    if result.initial_val_accuracy is not None:
        extra["initial_val_accuracy"] = result.initial_val_accuracy
    return outputs.save(result, config, "Fine-tuning", extra)
