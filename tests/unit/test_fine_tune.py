"""Fine-tuning: initialised from the head, exactly the named layers trainable, BN frozen."""

import keras
import numpy as np
import pytest

from kftransfer.components.core import fine_tune as ft
from kftransfer.components.core import fine_tune_model as ftm
from kftransfer.components.core.backbones import load_backbone
from kftransfer.components.core.config import ExtractConfig, FineTuneConfig, HeadConfig
from kftransfer.components.core.devices import dtype_policy
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.features import build_backbone
from kftransfer.components.core.heads import build_head, train_head
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.layout import (
    FeatureSpec,
    read_manifest,
    read_rows,
    read_stats,
    split_rule,
)
from kftransfer.components.core.model_io import load_model, save_model
from kftransfer.components.core.serving import write_saved_model
from kftransfer.components.core.tflite import convert

ONE_EPOCH = FineTuneConfig(fine_tune_epochs=1, fine_tune_batch_size=16)


def rule(learnable) -> dict:
    """The split rule of the learnable task's split, as an exported version records it."""
    return split_rule(read_stats(learnable["split"]))


def recorded(learnable, **spec_changes) -> dict:
    """What an exported version's evaluation.json records for a warm start from it."""
    spec = FeatureSpec.from_manifest(read_manifest(learnable["features"])).to_json()
    return {"split_rule": rule(learnable), "feature_spec": {**spec, **spec_changes}}


@pytest.fixture(scope="module")
def head_file(learnable, tmp_path_factory) -> tuple[str, float]:
    result = train_head(learnable["features"], HeadConfig(head_epochs=30, head_normalize=True))
    path = str(tmp_path_factory.mktemp("head") / "model.keras")
    save_model(result.model, path)
    return path, result.summary()["val_accuracy"]


def test_first_evaluation_equals_the_heads_accuracy(learnable, head_file):
    path, head_accuracy = head_file
    result = ft.fine_tune(learnable["split"], learnable["features"], path, ONE_EPOCH)
    validation = len(read_rows(learnable["split"], "validation"))
    # Features were stored as float16; allow one borderline image to flip.
    assert abs(result.initial_val_accuracy - head_accuracy) <= 1 / validation + 1e-6
    assert result.trainable_layers == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert len(result.history["loss"]) == 1


def test_saved_model_takes_raw_uint8_images_and_reloads_safely(learnable, head_file, tmp_path):
    result = ft.fine_tune(learnable["split"], learnable["features"], head_file[0], ONE_EPOCH)
    assert result.model.input.dtype == "uint8" and result.model.input_shape == (None, 32, 32, 3)
    path = save_model(result.model, str(tmp_path / "model.keras"))
    reloaded = load_model(path)
    rows = read_rows(learnable["split"], "test")
    images = next(iter(image_dataset([r.uri for r in rows], [0] * len(rows), 32, 64)))[0]
    expected = result.model.predict_on_batch(images)
    np.testing.assert_allclose(reloaded.predict_on_batch(images), expected, atol=1e-5)


@pytest.mark.parametrize(
    "policy,first_trained",
    [("default", "block5_conv1"), ("from_layer=block4_conv3", "block4_conv3"),
     ("after_layer=block4_pool", "block5_conv1"), ("top_n_layers=3", "block5_conv2"),
     ("all", "block1_conv1")],
)  # fmt: skip
def test_unfreeze_policies_name_exactly_the_trainable_layers(policy, first_trained):
    backbone = load_backbone("vgg16", "none", 32)
    trained = ftm.set_trainable(backbone, policy)
    names = [layer.name for layer in backbone.base.layers if layer.weights]
    assert trained == names[names.index(first_trained) :]
    assert [
        layer.name for layer in backbone.base.layers if layer.trainable and layer.weights
    ] == trained


def test_batchnorm_stays_frozen_and_compiled_trainables_match():
    backbone = load_backbone("mobilenet_v2", "none", 32)
    head = build_head(1280, 3, HeadConfig(head_units="8"))
    model = ftm.build_fine_tune_model(backbone, head, "avg")
    trained = ftm.set_trainable(backbone, "default")
    layers = backbone.base.layers
    start = [layer.name for layer in layers].index("block_11_expand")
    batch_norm = keras.layers.BatchNormalization
    expected = [x.name for x in layers[start:] if x.weights and not isinstance(x, batch_norm)]
    assert trained == expected
    assert not any(x.trainable for x in layers if isinstance(x, batch_norm))
    model.compile("sgd", "sparse_categorical_crossentropy")
    per_layer = sum(len(backbone.base.get_layer(n).trainable_weights) for n in trained)
    assert len(model.trainable_weights) == per_layer + len(head.trainable_weights)


def test_a_nested_pretrained_base_keeps_batchnorm_frozen_and_counts_its_layers(tmp_path):
    """The usual Keras transfer model, `MobileNet(...)(x, training=False)`, brought as `.keras`.

    Before: its base was one unit: `top_n_layers=20` trained all of it, BatchNormalization
    included, and `fit` (whose training=True overrides the call's) updated its statistics.
    """
    inner = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(32, 32, 3))
    images = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(inner(images, training=False))
    path = str(tmp_path / "nested.keras")
    keras.Model(images, keras.layers.Dense(5)(pooled)).save(path)
    backbone = load_backbone(path, image_size=32)
    model = ftm.build_fine_tune_model(
        backbone, build_head(1024, 3, HeadConfig(head_units="")), "avg"
    )
    trained = ftm.set_trainable(backbone, "default")  # top_n_layers=20
    units = [layer.name for layer in backbone.layers()]
    assert units[-21:] == [layer.name for layer in inner.layers[-20:]] + ["gap"]
    assert trained == [
        "conv_dw_11",
        "conv_pw_11",
        "conv_dw_12",
        "conv_pw_12",
        "conv_dw_13",
        "conv_pw_13",
    ]
    nested = backbone.base.get_layer(inner.name)
    batch_norm = [x for x in nested.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert len(batch_norm) == 27 and not any(x.trainable for x in batch_norm)
    before = [x.moving_mean.numpy().copy() for x in batch_norm]
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    pixels = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3)).astype("uint8")
    model.fit(pixels, np.arange(8) % 3, epochs=1, verbose=0)
    for moving, kept in zip((x.moving_mean.numpy() for x in batch_norm), before, strict=True):
        np.testing.assert_array_equal(moving, kept)


def test_policy_and_head_mismatches_are_clear_errors():
    backbone = load_backbone("vgg16", "none", 32)
    with pytest.raises(UserError, match="no layer 'block9_conv1' \\(its layers run from"):
        ftm.set_trainable(backbone, "from_layer=block9_conv1")
    with pytest.raises(UserError, match="--unfreeze 'top_half'"):
        ftm.set_trainable(backbone, "top_half")
    with pytest.raises(
        UserError, match="the head takes 1280 features but vgg16 with avg pooling gives 512"
    ):
        ftm.build_fine_tune_model(backbone, build_head(1280, 3, HeadConfig()), "avg")


def test_augmentation_spec():
    layers = ftm.augmentation("flip, zoom=0.2,contrast").layers
    assert [type(layer).__name__ for layer in layers] == [
        "RandomFlip",
        "RandomZoom",
        "RandomContrast",
    ]
    assert layers[1].height_factor == 0.2
    assert ftm.augmentation("") is None
    erasing = ftm.augmentation("erasing=1").layers[0]  # probability 1: every image
    images = np.full((4, 32, 32, 3), 200.0, np.float32)
    erased = np.asarray(erasing(images, training=True))
    assert all((image != 200).any() and (image == 200).any() for image in erased)
    with pytest.raises(UserError, match="--augmentation 'blur'"):
        ftm.augmentation("flip,blur")


def test_mixed_precision_policy_is_scoped():
    with dtype_policy(True):
        assert keras.config.dtype_policy().name == "mixed_float16"
        head = build_head(4, 3, HeadConfig(head_units="2"))
    assert keras.config.dtype_policy().name == "float32"
    assert head.get_layer("head_dense_0").compute_dtype == "float16"
    assert head.get_layer("head_output").compute_dtype == "float32"


def test_a_diverging_fine_tune_keeps_the_starting_weights(learnable, head_file):
    exploding = FineTuneConfig(
        fine_tune_epochs=2, fine_tune_learning_rate=50.0, fine_tune_batch_size=16
    )
    result = ft.fine_tune(learnable["split"], learnable["features"], head_file[0], exploding)
    assert result.best_epoch == 0  # no epoch beat the untrained model
    summary = result.summary()
    assert summary["val_accuracy"] == result.initial_val_accuracy
    assert summary["best_epoch"] == 0
    rows = read_rows(learnable["split"], "validation")
    images = next(iter(image_dataset([r.uri for r in rows], [0] * len(rows), 32, 64)))[0]
    backbone = build_backbone(ExtractConfig(backbone="vgg16", weights="none", image_size=32))
    start = ftm.build_fine_tune_model(backbone, load_model(head_file[0]), "avg")
    kept, initial = result.model.predict_on_batch(images), start.predict_on_batch(images)
    np.testing.assert_allclose(kept, initial, atol=1e-4)


def test_a_warm_start_begins_where_production_is_and_a_mismatch_starts_cold(
    learnable, head_file, tmp_path
):
    """Warm: the production model's validation accuracy at epoch 0, which the cold run
    needs its epochs to reach; other classes, or no production model: the head's."""
    from kftransfer.components.core import export
    from kftransfer.components.core.layout import read_labels
    from kftransfer.components.core.versions import latest_version

    path, head_accuracy = head_file
    cold = ft.fine_tune(learnable["split"], learnable["features"], path, ONE_EPOCH)
    assert cold.start.note == "from the trained head"
    production = keras.models.clone_model(cold.model)
    production.set_weights(cold.model.get_weights())
    labels = read_labels(learnable["split"])
    destination = str(tmp_path / "models")
    export.export_model(production, labels, destination, "#", recorded(learnable))
    warm_config = FineTuneConfig(fine_tune_epochs=1, fine_tune_batch_size=16, warm_start=True)
    warm = ft.fine_tune(learnable["split"], learnable["features"], path, warm_config,
                        export_uri=destination)  # fmt: skip
    version = latest_version(destination)
    assert warm.start.note == f"warm start from production version {version}"
    assert warm.start.warm_starts == 1
    cold_best = max(cold.history["val_" + ft.accuracy_name(cold.model)])
    assert warm.initial_val_accuracy >= cold_best  # reached at epoch 0, not after training
    other = str(tmp_path / "other")
    export.export_model(production, ["x", "y", "z"], other, "#", {})
    mismatch = ft.fine_tune(learnable["split"], learnable["features"], path, warm_config,
                            export_uri=other)  # fmt: skip
    assert mismatch.start.note.startswith("cold start: production version ")
    assert mismatch.start.note.endswith(" has other classes")
    assert abs(mismatch.initial_val_accuracy - head_accuracy) < 0.05
    empty = ft.fine_tune(learnable["split"], learnable["features"], path, warm_config,
                         export_uri=str(tmp_path / "none"))  # fmt: skip
    assert empty.start.note == f"cold start: no production model at {tmp_path / 'none'}"


def test_a_production_model_of_another_split_is_no_warm_start(learnable, head_file, tmp_path):
    """Another seed or fraction moves images between splits: production may have trained on
    this run's test images, which the blessing would then judge the warm-started model on."""
    from kftransfer.components.core import export
    from kftransfer.components.core.layout import read_labels
    from kftransfer.components.core.versions import latest_version

    cold = ft.fine_tune(learnable["split"], learnable["features"], head_file[0], ONE_EPOCH)
    labels = read_labels(learnable["split"])
    warm_config = FineTuneConfig(fine_tune_epochs=1, fine_tune_batch_size=16, warm_start=True)
    other_seed = {**rule(learnable), "seed": rule(learnable)["seed"] + 1}
    notes = {}
    for name, split in (("same", rule(learnable)), ("seed", other_seed), ("old", None)):
        destination = str(tmp_path / name)
        evaluation = {**recorded(learnable), "split_rule": split} if split else {}
        export.export_model(cold.model, labels, destination, "#", evaluation)
        start = ft.fine_tune(learnable["split"], learnable["features"], head_file[0], warm_config,
                             export_uri=destination).start  # fmt: skip
        notes[name] = start.note.replace(latest_version(destination), "V")
    seed = rule(learnable)["seed"]
    assert notes == {
        "same": "warm start from production version V",
        "seed": f"cold start: production version V was trained on another split (seed "
        f"{seed + 1} -> {seed}): images it trained on may be in this run's test split",
        "old": "cold start: production version V was trained on another split (not "
        "recorded): images it trained on may be in this run's test split",
    }


def test_a_production_model_of_another_backbone_setup_is_no_warm_start(
    learnable, head_file, tmp_path
):
    """Before: only weight shapes were compared, and a global-pooling backbone's are the
    same at any input size, pooling or preprocessing: production's weights were loaded."""
    from kftransfer.components.core import export
    from kftransfer.components.core.layout import read_labels
    from kftransfer.components.core.versions import latest_version

    cold = ft.fine_tune(learnable["split"], learnable["features"], head_file[0], ONE_EPOCH)
    warm_config = FineTuneConfig(fine_tune_epochs=1, fine_tune_batch_size=16, warm_start=True)
    evaluations = {
        "other": recorded(learnable, pooling="max", image_size=64),
        "dtype only": recorded(learnable, dtype="float32"),  # storage, not the network
        "old": {"split_rule": rule(learnable)},  # exported before the setup was recorded
    }
    notes = {}
    for name, evaluation in evaluations.items():
        destination = str(tmp_path / name.replace(" ", "-"))
        export.export_model(cold.model, read_labels(learnable["split"]), destination, "#",
                            evaluation)  # fmt: skip
        start = ft.fine_tune(learnable["split"], learnable["features"], head_file[0], warm_config,
                             export_uri=destination).start  # fmt: skip
        notes[name] = start.note.replace(latest_version(destination), "V")
    assert notes == {
        "other": "cold start: production version V was built on another setup (image_size "
        "64 -> 32, pooling max -> avg)",
        "dtype only": "warm start from production version V",
        "old": "cold start: production version V was built on another setup (not recorded)",
    }


def test_cold_start_every_n_counts_warm_starts_in_a_row(learnable, head_file, tmp_path):
    """Production came from 2 warm starts in a row: a 3rd is allowed only below N = 3."""
    from kftransfer.components.core import export
    from kftransfer.components.core.layout import read_labels

    path = head_file[0]
    cold = ft.fine_tune(learnable["split"], learnable["features"], path, ONE_EPOCH)
    destination = str(tmp_path / "models")
    evaluation = {"training": {"fine_tuned": {"warm_starts": 2}}, **recorded(learnable)}
    labels = read_labels(learnable["split"])
    export.export_model(cold.model, labels, destination, "#", evaluation)

    def start(every: int):
        config = FineTuneConfig(
            fine_tune_epochs=1, fine_tune_batch_size=16, warm_start=True, cold_start_every=every
        )
        return ft.fine_tune(learnable["split"], learnable["features"], path, config,
                            export_uri=destination).start  # fmt: skip

    forced = start(3)
    assert forced.note == "cold start: every 3 runs (--cold-start-every)"
    assert (forced.version, forced.warm_starts) == ("", 0)
    allowed = start(4)
    assert allowed.note.startswith("warm start from production version ")
    assert allowed.warm_starts == 3


def test_a_model_trained_in_mixed_precision_is_saved_in_float32_and_converts_to_tflite(
    tmp_path,
):
    """Before: model.keras kept `mixed_float16` (GPUs of capability 7.0 or more turn it on
    by default), so the SavedModel computed in float16 and TFLite refused it in every mode."""
    with dtype_policy(True):
        backbone = build_backbone(
            ExtractConfig(backbone="mobilenet", weights="none", image_size=32)
        )
        head = build_head(1024, 3, HeadConfig(head_units="8"))
        mixed = ftm.build_fine_tune_model(backbone, head, "avg")
    assert {layer.compute_dtype for layer in mixed._flatten_layers()} >= {"float16"}
    saved = load_model(save_model(mixed, str(tmp_path / "model.keras")))
    assert {layer.compute_dtype for layer in saved._flatten_layers()} == {"float32"}
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(
        saved.predict_on_batch(images), mixed.predict_on_batch(images), atol=2e-2
    )
    write_saved_model(saved, ["a", "b", "c"], str(tmp_path / "saved"))
    assert convert(str(tmp_path / "saved"), "float")[4:8] == b"TFL3"  # a TFLite flatbuffer
