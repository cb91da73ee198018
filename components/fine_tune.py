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
    cache_uri: str,
    export_uri: str,
    checkpoint_uri: str,
    tensorboard_uri: str,
):
    """Fine-tunes backbone + head on images; writes model.keras (raw uint8 images in).

    Checkpoints go below a folder named after the `model` artifact's URI, so a retry of
    the task resumes and another run starts fresh.

    Args:
        splits: the split folder from split_data.
        features: the features folder (names the backbone and its weights).
        head: the trained head's stage folder from train_head.
        model: output stage folder: model.keras, history.json, config.json.
        metrics: validation accuracy before and after, epochs, trainable parameters.
        curves: loss and accuracy per epoch (HTML).
    """
    from kftransfer.components.core.config import FineTuneConfig
    from kftransfer.components.core.fine_tune import fine_tune_stage
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish
    from kftransfer.components.core.training import StageOutputs

    setup_logging()
    config = FineTuneConfig.from_params(locals())
    outputs = StageOutputs.of(model, curves, checkpoint_uri, tensorboard_uri, "fine_tune")
    summary = fine_tune_stage(
        splits.path, features.path, head.path, config, outputs, cache_uri, export_uri
    )
    publish(metrics, summary)
    publish(model, summary, write_file=False)
