"""The training recipe: schedules, label smoothing, layer-wise decay, EMA, flip averaging."""

import keras
import numpy as np
import pytest

from kftransfer.components.core import fine_tune as ft
from kftransfer.components.core import recipe
from kftransfer.components.core.classifier import (
    accuracy_name,
    classifier_loss,
    with_flip_averaging,
)
from kftransfer.components.core.config import FineTuneConfig, HeadConfig
from kftransfer.components.core.devices import deterministic_ops
from kftransfer.components.core.errors import ParameterError
from kftransfer.components.core.heads import train_head
from kftransfer.components.core.model_io import load_model, save_model


def test_cosine_warms_up_linearly_then_decays_to_zero():
    schedule = recipe.learning_rate(1e-3, "cosine", epochs=10, steps=10, warmup_epochs=1)
    rates = [float(schedule(step)) for step in range(101)]
    assert rates[0] == 0.0 and rates[5] == pytest.approx(5e-4) and rates[10] == pytest.approx(1e-3)
    assert rates[55] == pytest.approx(5e-4, rel=1e-3)  # half-way down the cosine
    assert rates[100] == pytest.approx(0.0, abs=1e-9)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert recipe.learning_rate(1e-3, "constant", 10, 10, 1) == 1e-3
    no_warmup = recipe.learning_rate(1e-3, "cosine", 10, 10, 0)
    assert float(no_warmup(0)) == pytest.approx(1e-3)


def test_steps_per_epoch_counts_the_short_last_batch():
    assert recipe.steps_per_epoch(100, 32) == 4 and recipe.steps_per_epoch(96, 32) == 3
    assert recipe.steps_per_epoch(0, 32) == 1


def test_label_smoothing_spreads_the_target_over_every_class():
    probabilities = np.array([[0.7, 0.2, 0.1]], dtype="float32")
    smoothed = float(np.mean(classifier_loss(False, 3, 0.3)(np.array([0]), probabilities)))
    targets = np.array([0.7 + 0.1, 0.1, 0.1])  # 1 - s on the class, s / 3 on each
    assert smoothed == pytest.approx(-(targets * np.log(probabilities[0])).sum(), rel=1e-5)
    plain = float(np.mean(classifier_loss(False, 3, 0.0)(np.array([0]), probabilities)))
    assert plain == pytest.approx(-np.log(0.7), rel=1e-5)
    binary = classifier_loss(True, 2, 0.2)
    assert float(binary(np.array([[1.0]]), np.array([[0.9]]))) == pytest.approx(
        -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)), rel=1e-4
    )


def _stack(frozen: bool = True) -> keras.Model:
    inputs = keras.Input((2,))
    x = keras.layers.Dense(2, name="bottom")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Dense(2, name="middle")(x)
    outputs = keras.layers.Dense(1, name="top")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("norm").trainable = not frozen
    return model


def test_layer_decay_scales_count_depth_from_the_top_over_layers_with_weights():
    model = _stack()
    scales = recipe.layer_decay_scales(model.layers, 0.5)
    assert scales == {
        "top/kernel": 0.5, "top/bias": 0.5,
        "middle/kernel": 0.25, "middle/bias": 0.25,
        "bottom/kernel": 0.125, "bottom/bias": 0.125,
    }  # fmt: skip
    assert recipe.layer_decay_scales(model.layers, 1.0) == {}


def test_a_scaled_variable_takes_its_share_of_the_step():
    model = _stack()
    before = {v.path: np.array(v) for v in model.trainable_variables}
    optimizer = recipe.make_optimizer("sgd", 0.1, momentum=0.0, scale_by_path={"top/kernel": 0.25})
    model.compile(optimizer=optimizer, loss="mse")
    x, y = np.ones((4, 2), "float32"), np.full((4, 1), 3.0, "float32")
    reference = _stack()
    reference.set_weights(model.get_weights())
    reference.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(x, y)
    reference.train_on_batch(x, y)
    moved = {v.path: np.array(v) - before[v.path] for v in model.trainable_variables}
    full = {v.path: np.array(v) - before[v.path] for v in reference.trainable_variables}
    np.testing.assert_allclose(moved["top/kernel"], 0.25 * full["top/kernel"], rtol=1e-5)
    np.testing.assert_allclose(moved["top/bias"], full["top/bias"], rtol=1e-5)
    assert np.abs(full["top/kernel"]).max() > 0


def test_recipe_options_are_checked_with_the_flag_named():
    with pytest.raises(ParameterError) as err:
        FineTuneConfig(fine_tune_schedule="linear", layer_decay=0.0, ema_momentum=1.0)
    message = str(err.value)
    assert "--fine-tune-schedule 'linear': use constant or cosine" in message
    assert "--layer-decay must be in (0, 1], got 0.0" in message
    assert "--ema-momentum must be in [0, 1), got 1.0" in message
    with pytest.raises(ParameterError, match="--head-label-smoothing must be in"):
        HeadConfig(head_label_smoothing=1.0)


def test_a_smoothed_cosine_head_still_learns(learnable):
    config = HeadConfig(
        head_epochs=30, head_normalize=True, head_schedule="cosine", head_warmup_epochs=2,
        head_label_smoothing=0.1,
    )  # fmt: skip
    assert train_head(learnable["features"], config).summary()["val_accuracy"] >= 0.9


@pytest.fixture(scope="module")
def head_path(learnable, tmp_path_factory) -> str:
    result = train_head(learnable["features"], HeadConfig(head_epochs=30, head_normalize=True))
    return save_model(result.model, str(tmp_path_factory.mktemp("head") / "model.keras"))


def test_with_ema_the_kept_model_is_the_validated_one(learnable, head_path):
    """Validation runs on the averaged weights, and those are the weights kept."""
    config = FineTuneConfig(
        fine_tune_epochs=2, fine_tune_batch_size=16, ema_momentum=0.9, layer_decay=0.8
    )
    result = ft.fine_tune(learnable["split"], learnable["features"], head_path, config)
    assert result.model.optimizer.use_ema
    validation, _, _, _ = _validation(learnable, result.model)
    kept = result.model.evaluate(validation, verbose=0, return_dict=True)
    summary = result.summary()
    assert kept["loss"] == pytest.approx(summary["val_loss"], rel=1e-4)
    assert kept[accuracy_name(result.model)] == pytest.approx(summary["val_accuracy"])


def _validation(learnable, model):
    from kftransfer.components.core.images import image_dataset
    from kftransfer.components.core.layout import read_labels, read_rows

    labels = read_labels(learnable["split"])
    rows = read_rows(learnable["split"], "validation")
    ids = [labels.index(r.label) for r in rows]
    batches = image_dataset([r.uri for r in rows], ids, model.input_shape[1], 32)
    return batches.map(lambda x, y, _: (x, y)), labels, rows, ids


def test_flip_averaging_is_the_mean_over_the_mirror_and_survives_saving(tmp_path):
    inputs = keras.Input((4, 4, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype="uint8")
    averaged = with_flip_averaging(model)
    expected = (model.predict_on_batch(images) + model.predict_on_batch(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(averaged.predict_on_batch(images), expected, atol=1e-6)
    assert not np.allclose(expected, model.predict_on_batch(images), atol=1e-3)
    reloaded = load_model(save_model(averaged, str(tmp_path / "flip.keras")))
    np.testing.assert_allclose(reloaded.predict_on_batch(images), expected, atol=1e-6)


def test_one_seed_gives_one_model_on_cpu(learnable, head_path):
    """`--determinism auto` on a CPU: two fine-tunings with augmentation, bit-identical."""
    config = FineTuneConfig(fine_tune_epochs=2, fine_tune_batch_size=16)
    runs = [
        ft.fine_tune(learnable["split"], learnable["features"], head_path, config) for _ in range(2)
    ]
    assert deterministic_ops("auto") and not deterministic_ops("off")  # no GPU here
    assert runs[0].history == runs[1].history
    for first, second in zip(runs[0].model.weights, runs[1].model.weights, strict=True):
        np.testing.assert_array_equal(np.array(first), np.array(second))
