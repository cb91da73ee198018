"""KFP step: fine-tune the top of the backbone together with the trained head."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from kftransfer.components.component import kftransfer_component
from kftransfer.components.core.config import FineTuneConfig


@kftransfer_component(FineTuneConfig)
def fine_tune(
    splits: Input[Dataset],
    features: Input[Dataset],
    head: Input[Model],
    model: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    checkpoint_uri: str,
    tensorboard_uri: str,
    unfreeze: str,
    fine_tune_optimizer: str,
    fine_tune_learning_rate: float,
    momentum: float,
    fine_tune_epochs: int,
    fine_tune_batch_size: int,
    fine_tune_patience: int,
    augmentation: str,
    mixed_precision: str,
    seed: int,
):
    """Fine-tunes backbone + head on images; writes model.keras (raw uint8 images in).

    Args:
        splits: the split folder from split_data.
        features: the features folder (names the backbone and its weights).
        head: the trained head folder from train_head.
        model: output folder: model.keras, history.json.
        metrics: validation accuracy before and after, epochs, trainable parameters.
        curves: loss and accuracy per epoch (HTML).
        checkpoint_uri: resume-after-preemption checkpoints (local or gs://); empty for none.
            Each task writes below a folder named after its output artifact, so a retry
            of the task resumes and another run starts fresh.
        tensorboard_uri: TensorBoard log folder; empty for none.
        unfreeze: see `FineTuneConfig`.
        fine_tune_optimizer: see `FineTuneConfig`.
        fine_tune_learning_rate: see `FineTuneConfig`.
        momentum: see `FineTuneConfig`.
        fine_tune_epochs: see `FineTuneConfig`.
        fine_tune_batch_size: see `FineTuneConfig`.
        fine_tune_patience: see `FineTuneConfig`.
        augmentation: see `FineTuneConfig`.
        mixed_precision: see `FineTuneConfig`.
        seed: see `FineTuneConfig`.
    """
    from kftransfer.components.core import fine_tune as core
    from kftransfer.components.core import heads, plots, storage
    from kftransfer.components.core.config import FineTuneConfig
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.training import checkpoint_folder

    setup_logging()
    checkpoint = checkpoint_folder(checkpoint_uri, model.uri, "fine_tune")
    config = FineTuneConfig(
        unfreeze=unfreeze,
        fine_tune_optimizer=fine_tune_optimizer,
        fine_tune_learning_rate=fine_tune_learning_rate,
        momentum=momentum,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_batch_size=fine_tune_batch_size,
        fine_tune_patience=fine_tune_patience,
        augmentation=augmentation,
        mixed_precision=mixed_precision,
        seed=seed,
    )
    head_uri = storage.join(head.path, heads.HEAD_FILE)
    result = core.fine_tune(
        splits.path, features.path, head_uri, config, checkpoint, tensorboard_uri
    )
    result.save(model.path, core.MODEL_FILE, config)
    summary = {**result.summary(), **core.trainable_summary(result.model)}
    if result.initial_val_accuracy is not None:
        summary["initial_val_accuracy"] = result.initial_val_accuracy
    for name, value in summary.items():
        metrics.log_metric(name, value)
    storage.write_json(metrics.path, summary)  # kfp.local's cache skips artifacts without a file
    model.metadata.update(summary)
    storage.write_text(
        curves.path, plots.curves_page(result.history, "Fine-tuning", result.best_epoch)
    )
