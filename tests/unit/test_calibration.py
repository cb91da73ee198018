"""Temperature scaling recovers a known overconfidence; thresholds keep their promise."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kftransfer.components.core.calibration import (
    TemperatureScaling,
    apply_temperature,
    confidence_for_precision,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    reliability,
    temperature_from_validation,
)
from kftransfer.pipelines.summary import format_summary, trust_summary


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def synthetic(sharpen: float, n: int = 4000, classes: int = 5, seed: int = 0):
    """Labels drawn from softmax(true logits); the 'model' reports softmax(sharpen * logits)."""
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.normal(size=(n, classes))
    truth = softmax(logits)
    labels = (rng.random((n, 1)) > np.cumsum(truth, axis=1)).sum(axis=1)
    return softmax(sharpen * logits), labels


def test_an_overconfident_model_gets_its_temperature_back():
    probabilities, labels = synthetic(sharpen=3.0)
    temperature = fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(apply_temperature(probabilities, temperature), labels)
    assert before > 0.1 and after < before / 2


def test_a_calibrated_model_keeps_temperature_one():
    probabilities, labels = synthetic(sharpen=1.0, seed=1)
    assert fit_temperature(probabilities, labels) == pytest.approx(1.0, rel=0.1)


def test_an_underconfident_model_is_sharpened():
    probabilities, labels = synthetic(sharpen=0.5, seed=2)
    assert fit_temperature(probabilities, labels) == pytest.approx(0.5, rel=0.1)


def test_a_validation_split_without_mistakes_keeps_the_models_probabilities():
    """Before: T = 0.05, every test answer near certain, wrong ones too (ECE 0.12 -> 0.19)."""
    probabilities, labels = synthetic(sharpen=1.0, n=400, seed=3)
    right = probabilities.argmax(axis=1) == labels
    assert fit_temperature(probabilities[right][:12], labels[right][:12]) == pytest.approx(0.05)
    assert temperature_from_validation(probabilities[right][:12], labels[right][:12]) == (
        1.0,
        "not fitted: no mistake on the 12 validation images to fit it on",
    )
    one_wrong = np.r_[np.flatnonzero(right)[:11], np.flatnonzero(~right)[:1]]
    temperature, said = temperature_from_validation(probabilities[one_wrong], labels[one_wrong])
    assert said == "fitted on 12 validation images (1 wrong)"
    assert temperature == fit_temperature(probabilities[one_wrong], labels[one_wrong])
    assert 0.05 < temperature < 20.0


def test_the_run_summary_says_when_the_temperature_was_not_fitted():
    calibration = {"temperature": 1.0, "ece_before": 0.1, "ece_after": 0.1, "min_confidence": 0}
    probabilities, labels = synthetic(sharpen=1.0, n=400, seed=3)
    right = probabilities.argmax(axis=1) == labels
    _, said = temperature_from_validation(probabilities[right][:12], labels[right][:12])
    # the summary recognises the calibration's own words, not a copy of them
    assert said == "not fitted: no mistake on the 12 validation images to fit it on"
    for temperature_from, printed in (
        (said, f"(T=1.00, {said})"),
        ("fitted on 12 ...", "(T=1.00)"),
    ):
        evaluation = {
            "calibration": {"fine_tuned": {**calibration, "temperature_from": temperature_from}}
        }
        stage = {"val_accuracy": 0.9, "test_accuracy": 0.9}
        summary = {
            "head": stage,
            "fine_tuned": stage,
            "blessed": True,
            "reasons": [],
            "report": "r",
            "exported": "",
        }
        summary["trust"] = trust_summary(evaluation, None)
        lines = format_summary(summary).splitlines()
        assert f"calibration: ECE 0.100 -> 0.100 {printed}; answers 'unknown' below 0.00" in lines


def test_apply_temperature_keeps_rows_normalised_and_argmax():
    probabilities, _ = synthetic(sharpen=1.0, n=200)
    np.testing.assert_allclose(apply_temperature(probabilities, 1.0), probabilities, atol=1e-12)
    soft = apply_temperature(probabilities, 4.0)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    np.testing.assert_array_equal(soft.argmax(axis=1), probabilities.argmax(axis=1))
    assert soft.max(axis=1).mean() < probabilities.max(axis=1).mean()
    # a zero probability stays finite and tiny
    assert np.all(np.isfinite(apply_temperature(np.array([[1.0, 0.0]]), 0.5)))
    with pytest.raises(ValueError):
        apply_temperature(probabilities, 0.0)


def test_reliability_bins_by_hand():
    probabilities = np.array([[0.95, 0.05], [0.92, 0.08], [0.38, 0.62], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])  # right, wrong, right, right
    diagram = reliability(probabilities, labels, bins=2)  # (0, .5] empty; (.5, 1] all
    np.testing.assert_array_equal(diagram.count, [0, 4])
    assert diagram.accuracy[1] == pytest.approx(0.75)
    assert diagram.confidence[1] == pytest.approx(0.76)
    assert np.isnan(diagram.accuracy[0])
    assert expected_calibration_error(probabilities, labels, bins=2) == pytest.approx(0.01)
    # ten bins: 0.95 and 0.92 share (.9, 1] (accuracy 0.5, confidence .935); 0.62, 0.55 apart
    expected = (2 * abs(0.5 - 0.935) + abs(1 - 0.62) + abs(1 - 0.55)) / 4
    assert expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(expected)


def test_confidence_for_precision_meets_the_target():
    probabilities, labels = synthetic(sharpen=1.0, seed=3)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    for target in (0.8, 0.9, 0.95):
        threshold = confidence_for_precision(probabilities, labels, target)
        covered = confidence >= threshold
        assert correct[covered].mean() >= target
        # the smallest such threshold: one step lower misses the target
        lower = confidence[confidence < threshold].max()
        assert correct[confidence >= lower].mean() < target
    assert confidence_for_precision(probabilities, labels, 1.01) is None


def test_confidence_for_precision_counts_ties_together():
    # two rows tied at 0.9, one right one wrong: 0.9 covers both (accuracy 0.5), never
    # just the right one (which would reach 1.0); 0.8 covers all three (2/3)
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])
    labels = np.array([0, 1, 1])
    assert confidence_for_precision(probabilities, labels, 0.7) is None
    assert confidence_for_precision(probabilities, labels, 0.6) == pytest.approx(0.8)


def test_coverage_curve():
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.5, 0.5]])
    labels = np.array([0, 1, 1, 0])
    curve = coverage_curve(probabilities, labels, [0.0, 0.65, 0.8, 0.95])
    assert curve == [
        (0.0, 1.0, 0.75),
        (0.65, 0.5, 0.5),
        (0.8, 0.25, 1.0),
        (0.95, 0.0, None),
    ]


def calibrated_model(temperature: float, classes: int = 4) -> keras.Model:
    inputs = keras.Input((classes,), name="probabilities")
    return keras.Model(inputs, TemperatureScaling(temperature, name="temperature")(inputs))


def test_the_keras_layer_equals_apply_temperature_and_survives_safe_loading(tmp_path):
    probabilities, _ = synthetic(sharpen=2.0, n=64, classes=4)
    probabilities[0] = [1.0, 0.0, 0.0, 0.0]  # an exact zero must not give NaN
    model = calibrated_model(2.5)
    expected = apply_temperature(probabilities, 2.5)
    np.testing.assert_allclose(model.predict(probabilities, verbose=0), expected, atol=1e-5)
    path = str(tmp_path / "calibrated.keras")
    model.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    assert loaded.get_layer("temperature").temperature == 2.5
    np.testing.assert_allclose(loaded.predict(probabilities, verbose=0), expected, atol=1e-5)


def test_the_keras_layer_traces_into_a_saved_model(tmp_path):
    model = calibrated_model(0.7, classes=3)
    model.export(str(tmp_path / "saved"), verbose=False)
    serve = tf.saved_model.load(str(tmp_path / "saved")).serve
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(
        serve(tf.constant(probabilities)).numpy(), apply_temperature(probabilities, 0.7), atol=1e-5
    )


def test_the_keras_layer_rejects_a_bad_temperature():
    with pytest.raises(ValueError):
        TemperatureScaling(-1.0)
