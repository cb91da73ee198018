"""The backbone registry: shapes, preprocessing, weights files, bring-your-own models."""

import os

import keras
import numpy as np
import pytest

from devtools.imagegen import stored_sideways
from devtools.imagenet import mobilenet_classifier, sample_photos
from kftransfer.components.core.backbones import REGISTRY, load_backbone
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.features import feature_extractor
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.layers import Preprocess

SMALL_SIZE = {"vgg16": 32, "inception_v3": 75}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_backbone_gives_features_of_its_dim(name):
    size = SMALL_SIZE.get(name, 64)
    backbone = load_backbone(name, "none", size)
    for pooling, expected in [("avg", REGISTRY[name].channels), ("max", REGISTRY[name].channels)]:
        extractor = feature_extractor(backbone, pooling)
        features = extractor.predict_on_batch(np.zeros((2, size, size, 3), np.uint8))
        assert features.shape == (2, expected)
        assert features.dtype == np.float32
        assert np.isfinite(features).all()
    assert [layer.trainable for layer in backbone.base.layers] == [False] * len(
        backbone.base.layers
    )
    spec = REGISTRY[name].unfreeze.split("=")[1]
    if not REGISTRY[name].unfreeze.startswith("top_n_layers"):
        backbone.base.get_layer(spec)  # the default unfreeze point exists


def test_flatten_pooling_keeps_the_spatial_map():
    backbone = load_backbone("vgg16", "none", 128)
    assert feature_extractor(backbone, "flatten").output_shape == (None, 4 * 4 * 512)


@pytest.mark.parametrize(
    "mode,module",
    [("caffe", "vgg16"), ("tf", "mobilenet_v2"), ("torch", "densenet"), ("none", "efficientnet")],
)
def test_preprocessing_matches_keras_applications(mode, module):
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.float32)
    expected = getattr(keras.applications, module).preprocess_input(images.copy())
    actual = keras.ops.convert_to_numpy(Preprocess(mode)(images.astype(np.uint8)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(UserError, match="unknown backbone 'vgg19': use one of densenet121, "):
        load_backbone("vgg19", "none")


def test_weights_fingerprint_tracks_the_weights():
    first = load_backbone("mobilenet_v2", "none", 32)
    keras.utils.set_random_seed(0)
    again = load_backbone("mobilenet_v2", "none", 32)
    keras.utils.set_random_seed(0)
    same_seed = load_backbone("mobilenet_v2", "none", 32)
    assert again.fingerprint == same_seed.fingerprint
    assert first.fingerprint != again.fingerprint  # other random weights
    assert len(first.fingerprint) == 64


def test_weights_file_of_another_architecture_is_a_clear_error(tmp_path):
    path = str(tmp_path / "mnv2.weights.h5")
    keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    ).save_weights(path)
    with pytest.raises(UserError, match=f"weights file {path} does not fit backbone vgg16"):
        load_backbone("vgg16", path, 64)
    with pytest.raises(UserError, match="not found"):
        load_backbone("vgg16", str(tmp_path / "missing.weights.h5"), 64)


def test_weights_file_loads_exactly(tmp_path):
    keras.utils.set_random_seed(3)
    source = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    )
    path = str(tmp_path / "mine.weights.h5")
    source.save_weights(path)
    loaded = load_backbone("mobilenet_v2", path, 64)
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        loaded.base.predict_on_batch(x), source.predict_on_batch(x), atol=1e-5
    )


def _custom_model(tmp_path, with_pool=True) -> str:
    inputs = keras.Input((48, 48, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = (
        keras.layers.GlobalAveragePooling2D(name="pool")(x)
        if with_pool
        else keras.layers.Flatten()(x)
    )
    outputs = keras.layers.Dense(5, name="logits")(x)
    path = str(tmp_path / ("custom.keras" if with_pool else "nopool.keras"))
    keras.Model(inputs, outputs).save(path)
    return path


def test_bring_your_own_backbone_uses_the_last_pooling_layer(tmp_path):
    path = _custom_model(tmp_path)
    backbone = load_backbone(path, preprocessing="torch")
    assert backbone.image_size == 48 and backbone.preprocessing == "torch"
    assert feature_extractor(backbone, "avg").output_shape == (None, 8)
    named = load_backbone(path, feature_layer="logits")
    assert feature_extractor(named, "avg").output_shape == (None, 5)


def test_bring_your_own_backbone_errors(tmp_path):
    path = _custom_model(tmp_path)
    with pytest.raises(UserError, match="has no layer 'nope': check --feature-layer"):
        load_backbone(path, feature_layer="nope")
    with pytest.raises(UserError, match="takes 48x48 images: use --image-size 48"):
        load_backbone(path, image_size=64)
    with pytest.raises(UserError, match="no global pooling layer: name one with --feature-layer"):
        load_backbone(_custom_model(tmp_path, with_pool=False))
    with pytest.raises(UserError, match="--preprocessing 'bgr'"):
        load_backbone(path, preprocessing="bgr")


def imagenet_top1(model: keras.Model, paths: list[str], truth: np.ndarray) -> float:
    batches = image_dataset(paths, list(truth), 224, 8)
    predicted = np.concatenate([model.predict_on_batch(x) for x, _, _ in batches]).argmax(axis=1)
    return float(np.mean(predicted == truth))


def test_our_input_pipeline_matches_the_real_mobilenet_weights(shared_dir):
    paths, truth = sample_photos(shared_dir)
    assert imagenet_top1(mobilenet_classifier(shared_dir), paths, truth) >= 0.8


def test_photos_stored_sideways_as_phones_do_are_classified_upright(shared_dir, tmp_path):
    """The real photos with sideways pixels and EXIF orientation 6, as a phone stores them."""
    paths, truth = sample_photos(shared_dir)
    sideways = [str(tmp_path / os.path.basename(path)) for path in paths]
    for path, copy in zip(paths, sideways, strict=True):
        with open(path, "rb") as photo, open(copy, "wb") as out:
            out.write(stored_sideways(photo.read()))
    model = mobilenet_classifier(shared_dir)
    upright = imagenet_top1(model, paths, truth)
    assert imagenet_top1(model, sideways, truth) >= upright - 0.05  # 1 of 20


def test_bring_your_own_efficientnet_lite0_classifies_imagenet(shared_dir):
    path = os.path.join(shared_dir, "weights", "efficientnet_lite0_imagenet.keras")
    backbone = load_backbone(path, feature_layer="fc", preprocessing="tf")
    assert imagenet_top1(feature_extractor(backbone, "avg"), *sample_photos(shared_dir)) >= 0.8
