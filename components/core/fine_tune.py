"""Fine-tuning: raw images -> preprocessing -> backbone -> the trained head, top layers unfrozen.

The head starts from the weights trained on cached features (a random head's large
gradients would wreck the pretrained features), BatchNormalization layers stay frozen and
in inference mode (the backbone is called with `training=False`), the model is compiled
after every change of `trainable`, the learning rate is small, and augmentation applies to
the training input only. The saved model takes raw uint8 RGB images and contains its
preprocessing.
"""

import hashlib
from dataclasses import dataclass

import keras
import numpy as np

from kftransfer.components.core import storage
from kftransfer.components.core.backbones import Backbone, load_backbone
from kftransfer.components.core.checkpoints import ResumableTraining, fingerprint_of
from kftransfer.components.core.classifier import accuracy_name, compile_classifier
from kftransfer.components.core.config import ExtractConfig, FineTuneConfig
from kftransfer.components.core.devices import (
    distribution_strategy,
    dtype_policy,
    mixed_precision_wanted,
)
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.features import build_backbone, extract_config, feature_extractor
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.layout import read_manifest, read_rows, stage_model
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.registry import is_custom
from kftransfer.components.core.specs import parse_augmentation, parse_unfreeze
from kftransfer.components.core.training import (
    EpochLogger,
    StageOutputs,
    TrainResult,
    fit,
    make_optimizer,
    quiet_unknown_length,
    tensorboard_callbacks,
)

AUGMENTATION_LAYERS = {
    "flip": lambda _: keras.layers.RandomFlip("horizontal"),
    "rotation": keras.layers.RandomRotation,
    "zoom": keras.layers.RandomZoom,
    "translation": lambda f: keras.layers.RandomTranslation(f, f),
    "contrast": keras.layers.RandomContrast,
}


def unfreeze_start(layers: list[keras.layers.Layer], policy: str, default: str) -> int:
    """The index of the first backbone layer to train under `policy`.

    Policies: `default` (the backbone's registry default), `all`, `top_n_layers=N`,
    `from_layer=NAME` (NAME and above), `after_layer=NAME` (above NAME).

    Raises:
        UserError: an unknown policy or layer name.
    """
    policy = default if policy == "default" else policy
    try:
        kind, value = parse_unfreeze(policy)
    except ValueError:
        raise UserError(
            f"--unfreeze {policy!r}: use default, all, top_n_layers=N, from_layer=NAME "
            "or after_layer=NAME"
        ) from None
    if kind == "all":
        return 0
    if kind == "top_n_layers":
        return max(len(layers) - int(value), 0)
    names = [layer.name for layer in layers]
    if value not in names:
        raise UserError(
            f"--unfreeze {policy}: the backbone has no layer {value!r} "
            f"(its layers run from {names[1]!r} to {names[-1]!r})"
        )
    return names.index(value) + (kind == "after_layer")


def check_unfreeze_policy(extract: ExtractConfig, tune: FineTuneConfig) -> None:
    """Fails fast on a policy naming a layer the backbone does not have.

    Builds the registry backbone's architecture (no weights: a second or two) only when the
    policy names a layer, so a typo is one line before a run, not after extraction.

    Raises:
        UserError: the layer does not exist.
    """
    kind, _ = parse_unfreeze(tune.unfreeze)
    if kind not in ("from_layer", "after_layer") or is_custom(extract.backbone):
        return
    backbone = load_backbone(extract.backbone, "none", extract.image_size)
    unfreeze_start(backbone.base.layers, tune.unfreeze, backbone.unfreeze)


def set_trainable(base: keras.Model, policy: str, default: str) -> list[str]:
    """Unfreezes the layers `policy` names (never BatchNormalization); returns their names."""
    start = unfreeze_start(base.layers, policy, default)
    base.trainable = True
    trained = []
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= start and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable and layer.weights:
            trained.append(layer.name)
    return trained


def build_fine_tune_model(backbone: Backbone, head: keras.Model, pooling: str) -> keras.Model:
    """Raw uint8 images -> preprocessing -> backbone (inference mode) -> pooling -> `head`.

    Raises:
        UserError: the head does not take this backbone's features.
    """
    extractor = feature_extractor(backbone, pooling)
    dim = extractor.output_shape[-1]
    if head.input_shape[-1] != dim:
        raise UserError(
            f"the head takes {head.input_shape[-1]} features but {backbone.name} with {pooling} "
            f"pooling gives {dim}: train the head on this backbone's features"
        )
    return keras.Model(extractor.input, head(extractor.output), name="classifier")


def augmentation(spec: str) -> keras.Sequential | None:
    """Random layers from `flip,rotation=0.05,zoom=0.1,...` (None when `spec` is empty).

    Raises:
        UserError: the spec does not parse (see `config.parse_augmentation`).
    """
    try:
        parsed = parse_augmentation(spec)
    except ValueError as err:
        raise UserError(f"--augmentation {err}") from None
    layers = [AUGMENTATION_LAYERS[name](factor) for name, factor in parsed]
    return keras.Sequential(layers, name="augmentation") if layers else None


@dataclass
class FineTuneResult(TrainResult):
    """A fine-tuned model, with its accuracy before fine-tuning and what was trained."""

    initial_val_accuracy: float | None = None
    trainable_layers: list[str] | None = None


def _datasets(splits_uri: str, labels: list[str], size: int, batch: int, config: FineTuneConfig):
    ids = {label: i for i, label in enumerate(labels)}
    train_rows, val_rows = read_rows(splits_uri, "train"), read_rows(splits_uri, "validation")

    def pairs(dataset):
        return dataset.map(lambda x, y, _: (x, y))

    train = image_dataset(
        [r.uri for r in train_rows],
        [ids[r.label] for r in train_rows],
        size,
        batch,
        shuffle_seed=config.seed,
        augment=augmentation(config.augmentation),
    )
    val = image_dataset([r.uri for r in val_rows], [ids[r.label] for r in val_rows], size, batch)
    return pairs(train), pairs(val), len(train_rows)


def fine_tune(
    splits_uri: str,
    features_uri: str,
    head_uri: str,
    config: FineTuneConfig,
    checkpoint_uri: str = "",
    tensorboard_uri: str = "",
    callbacks: list[keras.callbacks.Callback] = (),
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
    """
    keras.utils.set_random_seed(config.seed)
    manifest = read_manifest(features_uri)
    strategy = distribution_strategy()
    with strategy.scope(), dtype_policy(mixed_precision_wanted(config.mixed_precision)):
        backbone = build_backbone(extract_config(manifest))
        if backbone.fingerprint != manifest["weights_fingerprint"]:
            raise UserError(
                f"the weights of {backbone.name} differ from those the features were extracted "
                f"with ({manifest['weights']}): re-run extraction"
            )
        model = build_fine_tune_model(backbone, load_model(head_uri), manifest["pooling"])
        trained = set_trainable(backbone.base, config.unfreeze, backbone.unfreeze)
        optimizer = make_optimizer(
            config.fine_tune_optimizer, config.fine_tune_learning_rate, config.momentum
        )
        compile_classifier(model, optimizer)
    LOGGER.info("fine-tune: %d backbone layers trainable, from %s", len(trained), trained[:1])
    batch = config.fine_tune_batch_size * strategy.num_replicas_in_sync
    train, val, rows = _datasets(splits_uri, manifest["labels"], backbone.image_size, batch, config)
    head_sha = hashlib.sha256(storage.read_bytes(head_uri)).hexdigest()
    resumable = ResumableTraining(
        checkpoint_uri,
        fingerprint_of("fine_tune", manifest["splits"], head_sha, config.to_dict()),
        config.fine_tune_patience,
    )
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
    callbacks = [logger, resumable, *tensorboard_callbacks(tensorboard_uri), *callbacks]
    fit(model, train, val, config.fine_tune_epochs, initial_epoch, callbacks)
    resumable.finish(model)
    baseline = resumable.state.get("baseline")
    return FineTuneResult(
        model,
        resumable.history,
        resumable.state["best_epoch"],
        logger.seconds,
        baseline,
        initial_val_accuracy=baseline[f"val_{accuracy_name(model)}"] if baseline else None,
        trainable_layers=trained,
    )


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
) -> dict:
    """Fine-tunes from the trained head's stage folder; writes the model's stage folder.

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
    )
    extra = trainable_summary(result.model)
    if result.initial_val_accuracy is not None:
        extra["initial_val_accuracy"] = result.initial_val_accuracy
    return outputs.save(result, config, "Fine-tuning", extra)
