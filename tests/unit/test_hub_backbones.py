"""KerasHub presets as backbones, on tiny random presets written by `devtools.hub_presets`."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from devtools.hub_presets import FAMILIES, write_tiny_preset
from kftransfer.components.core import model_io
from kftransfer.components.core.backbones import load_backbone
from kftransfer.components.core.config import ExtractConfig
from kftransfer.components.core.errors import ParameterError, UserError
from kftransfer.components.core.features import feature_extractor
from kftransfer.components.core.fine_tune_model import build_fine_tune_model, set_trainable
from kftransfer.components.core.recipe import layer_decay_scales
from kftransfer.components.core.registry import missing_preset_folder

pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("presets")
    return {family: write_tiny_preset(str(root / family), family) for family in FAMILIES}


def pixels(n: int = 4, size: int = 28) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_tower_family_gives_vectors_and_fine_tunes_and_round_trips(presets, family, tmp_path):
    backbone = load_backbone(f"keras_hub:{presets[family]}")
    assert backbone.image_size == 28 and backbone.preprocessing == "none"
    features = feature_extractor(backbone, "avg").predict(pixels(), verbose=0)
    assert features.shape == (4, 32) and np.isfinite(features).all()
    head = keras.Sequential([keras.Input((32,)), keras.layers.Dense(3)])
    model = build_fine_tune_model(backbone, head, "avg")
    trained = set_trainable(backbone, "default")  # the top 3 blocks and the norm (all here)
    assert trained and len(model.trainable_weights) > len(head.trainable_weights)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(True))
    before = [w.numpy().copy() for w in backbone.base.trainable_weights]
    model.fit(pixels(), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    after = backbone.base.trainable_weights
    assert any(not np.array_equal(b, a.numpy()) for b, a in zip(before, after, strict=True))
    path = str(tmp_path / "model.keras")
    model_io.save_model(model, path)
    again = model_io.load_model(path)
    np.testing.assert_allclose(
        again.predict(pixels(), verbose=0), model.predict(pixels(), verbose=0), atol=1e-5
    )


def test_the_units_open_the_encoder_so_policies_count_blocks(presets):
    units = {}
    for family, folder in presets.items():
        names = [unit.name for unit in load_backbone(f"keras_hub:{folder}").layers()]
        units[family] = [name.removeprefix(f"tiny_{family}_") for name in names]
    assert units["dinov2"] == ["embeddings", "layers_0", "layers_1", "layernorm"]
    assert units["vit"] == [
        "vit_patching_and_embedding", "transformer_block_1", "transformer_block_2", "dropout", "ln",
    ]  # fmt: skip
    assert units["clip"] == [
        "embedding",
        "pre_layer_norm",
        "encoder_block_0",
        "encoder_block_1",
        "layer_norm",
    ]
    assert units["siglip"] == [
        "embedding",
        "encoder_block_0",
        "encoder_block_1",
        "post_layer_norm",
        "head",
    ]


def test_top_n_layers_trains_the_top_blocks_and_layer_decay_counts_them(presets):
    backbone = load_backbone(f"keras_hub:{presets['dinov2']}")
    assert set_trainable(backbone, "top_n_layers=2") == ["layers_1", "tiny_dinov2_layernorm"]
    trainable = {id(w) for w in backbone.base.trainable_weights}
    embeddings, block0, block1, norm = backbone.layers()
    assert not any(id(w) in trainable for w in embeddings.weights + block0.weights)
    assert all(id(w) in trainable for w in block1.trainable_weights + norm.trainable_weights)
    scales = layer_decay_scales(backbone.layers(), 0.5)
    assert {scales[w.path] for w in norm.trainable_weights} == {0.5}
    assert {scales[w.path] for w in block1.trainable_weights} == {0.25}
    assert not any(w.path in scales for w in block0.weights)


def test_weights_none_is_random_and_seeded_imagenet_is_the_presets(presets):
    name = f"keras_hub:{presets['dinov2']}"
    own, random = load_backbone(name), load_backbone(name, "none")
    assert own.fingerprint != random.fingerprint
    assert load_backbone(name).fingerprint == own.fingerprint  # deterministic


def test_the_fingerprint_covers_the_converters_normalisation(tmp_path):
    folder = write_tiny_preset(str(tmp_path / "p"))
    before = load_backbone(f"keras_hub:{folder}").fingerprint
    path = tmp_path / "p" / "image_converter.json"
    spec = json.loads(path.read_text())
    spec["config"]["scale"] = [1 / 255] * 3
    path.write_text(json.dumps(spec))
    assert load_backbone(f"keras_hub:{folder}").fingerprint != before  # new features: no reuse


def test_another_size_reinterpolates_dinov2s_positions(presets):
    backbone = load_backbone(f"keras_hub:{presets['dinov2']}", image_size=42)
    assert backbone.image_size == 42
    assert feature_extractor(backbone, "avg").predict(pixels(2, 42), verbose=0).shape == (2, 32)


def test_bad_presets_are_one_clear_line(presets, tmp_path):
    with pytest.raises(UserError, match="KerasHub preset folder .*nope does not exist"):
        load_backbone(f"keras_hub:{tmp_path / 'nope'}")
    with pytest.raises(UserError, match="a KerasHub preset brings its own weights"):
        load_backbone(f"keras_hub:{presets['dinov2']}", weights=str(tmp_path / "w.weights.h5"))
    converterless = write_tiny_preset(str(tmp_path / "bare"))
    (tmp_path / "bare" / "image_converter.json").unlink()
    with pytest.raises(UserError, match="has no image converter"):
        load_backbone(f"keras_hub:{converterless}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot load KerasHub preset"):
        load_backbone(f"keras_hub:{tmp_path / 'empty'}")


def test_config_accepts_hub_presets_and_names_them_in_the_error():
    assert ExtractConfig(backbone="keras_hub:dinov2_small").backbone == "keras_hub:dinov2_small"
    with pytest.raises(ParameterError, match="the URI of a .keras model, or keras_hub:PRESET"):
        ExtractConfig(backbone="keras_hub:")


def test_only_a_local_preset_folder_that_does_not_exist_is_refused_before_a_run(tmp_path):
    for fine in ("keras_hub:dinov2_small", "keras_hub:kaggle://keras/dinov2/keras/dinov2_small",
                 "keras_hub:hf://org/model", "keras_hub:gs://b/p", f"keras_hub:{tmp_path}",
                 "mobilenet", "gs://b/model.keras"):  # fmt: skip
        assert missing_preset_folder(fine) is None, fine
    for missing in (f"keras_hub:{tmp_path / 'nope'}", "keras_hub:./nope", "keras_hub:..nope"):
        assert missing_preset_folder(missing).startswith(f"--backbone {missing}: no preset folder")


def test_without_keras_hub_the_error_says_how_to_install(presets):
    code = (
        "import sys; sys.modules['keras_hub'] = None\n"
        "from kftransfer.components.core.backbones import load_backbone\n"
        "from kftransfer.components.core.errors import ParameterError, UserError\n"
        f"try: load_backbone('keras_hub:{presets['dinov2']}')\n"
        "except UserError as e: print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("pip install --no-deps -r requirements-keras-hub.txt")
