"""KFP step: train the classifier head on the cached bottleneck features."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from kftransfer.components.component import kftransfer_component
from kftransfer.components.core.config import HeadConfig


@kftransfer_component(HeadConfig)
def train_head(
    features: Input[Dataset],
    head: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    checkpoint_uri: str,
    tensorboard_uri: str,
    head_normalize: bool,
    head_units: str,
    head_dropout: float,
    head_optimizer: str,
    head_learning_rate: float,
    head_epochs: int,
    head_batch_size: int,
    head_patience: int,
    class_weight: str,
    seed: int,
):
    """Trains the head; writes head.keras and history.json into the `head` folder.

    Args:
        features: the features folder from extract_bottlenecks.
        head: output folder: head.keras, history.json.
        metrics: best validation accuracy and loss, epochs run.
        curves: loss and accuracy per epoch (HTML).
        checkpoint_uri: resume-after-preemption checkpoints (local or gs://); empty for none.
            Each task writes below a folder named after its output artifact, so a retry
            of the task resumes and another run starts fresh.
        tensorboard_uri: TensorBoard log folder; empty for none.
        head_normalize: see `HeadConfig`.
        head_units: see `HeadConfig`.
        head_dropout: see `HeadConfig`.
        head_optimizer: see `HeadConfig`.
        head_learning_rate: see `HeadConfig`.
        head_epochs: see `HeadConfig`.
        head_batch_size: see `HeadConfig`.
        head_patience: see `HeadConfig`.
        class_weight: see `HeadConfig`.
        seed: see `HeadConfig`.
    """
    from kftransfer.components.core import heads, plots, storage
    from kftransfer.components.core.config import HeadConfig
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.training import checkpoint_folder

    setup_logging()
    checkpoint = checkpoint_folder(checkpoint_uri, head.uri, "head")
    config = HeadConfig(
        head_normalize=head_normalize,
        head_units=head_units,
        head_dropout=head_dropout,
        head_optimizer=head_optimizer,
        head_learning_rate=head_learning_rate,
        head_epochs=head_epochs,
        head_batch_size=head_batch_size,
        head_patience=head_patience,
        class_weight=class_weight,
        seed=seed,
    )
    result = heads.train_head(features.path, config, checkpoint, tensorboard_uri)
    result.save(head.path, heads.HEAD_FILE, config)
    summary = result.summary()
    for name, value in summary.items():
        metrics.log_metric(name, value)
    storage.write_json(metrics.path, summary)  # kfp.local's cache skips artifacts without a file
    head.metadata.update(summary)
    storage.write_text(
        curves.path, plots.curves_page(result.history, "Head training", result.best_epoch)
    )
