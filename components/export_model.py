"""KFP step: export the blessed model as a new version and move `latest` to it."""

from kfp.dsl import Dataset, Input, Model, Output

from kftransfer.components.component import kftransfer_component


@kftransfer_component()
def export_model(
    splits: Input[Dataset],
    features: Input[Dataset],
    head: Input[Model],
    model: Input[Model],
    evaluation: Input[Dataset],
    exported: Output[Model],
    destination: str,
    tflite: bool,
):
    """Writes DEST/<version>/ (SavedModel, model.keras, labels.json, model card), then latest.

    Args:
        splits: the split folder (labels, data counts).
        features: the features folder (backbone settings).
        head: the trained head folder (its hyper-parameters).
        model: the fine-tuned model folder.
        evaluation: evaluation.json from evaluate_model.
        exported: its URI is the new version folder.
        destination: the export folder (local or gs://).
        tflite: also write model.tflite, with a parity check against the SavedModel.
    """
    from kftransfer.components.core import export as core
    from kftransfer.components.core import heads, shards, storage
    from kftransfer.components.core.fine_tune import MODEL_FILE
    from kftransfer.components.core.model_card import model_card
    from kftransfer.components.core.model_io import load_model
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.split import read_labels

    setup_logging()
    result = storage.read_json(evaluation.path)
    keras_model = load_model(storage.join(model.path, MODEL_FILE))
    hyper_parameters = {
        "head": storage.read_json(storage.join(head.path, heads.CONFIG_FILE)),
        "fine-tuning": storage.read_json(storage.join(model.path, heads.CONFIG_FILE)),
    }
    version = core.new_version(destination)
    card = model_card(
        result,
        shards.read_manifest(features.path),
        storage.read_json(storage.join(splits.path, "stats.json")),
        hyper_parameters,
        version,
    )
    images = core.test_images(splits.path, keras_model.input_shape[1]) if tflite else None
    target = core.export_model(
        keras_model, read_labels(splits.path), destination, card, result, images, version
    )
    exported.uri = target
    exported.metadata.update(version=storage.basename(target), destination=destination)
