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
):
    """Trains the head; writes model.keras, history.json and config.json into `head`.

    Checkpoints go below a folder named after the `head` artifact's URI, so a retry of
    the task resumes and another run starts fresh.

    Args:
        features: the features folder from extract_bottlenecks.
        head: output stage folder: model.keras, history.json, config.json.
        metrics: best validation accuracy and loss, epochs run.
        curves: loss and accuracy per epoch (HTML).
    """
    from kftransfer.components.core.config import HeadConfig
    from kftransfer.components.core.heads import train_head_stage
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish
    from kftransfer.components.core.training import StageOutputs

    setup_logging()
    config = HeadConfig.from_params(locals())
    outputs = StageOutputs.of(head, curves, checkpoint_uri, tensorboard_uri, "head")
    summary = train_head_stage(features.path, config, outputs)
    publish(metrics, summary)
    publish(head, summary, write_file=False)
