"""Shared fixtures: a real GCS emulator on 127.0.0.1, storage roots, kfp.local."""

import os
import tempfile

import pytest

from devtools.emulator import emulator_host, new_bucket


@pytest.fixture(scope="session", autouse=True)
def temporary_files_below_pytests_folder(tmp_path_factory):
    """$TMPDIR for the tests and every process they start: a folder of pytest's own.

    kfp.local's steps each make a `mktemp -d` folder that nothing removes
    (`kfp/dsl/component_factory.py:583`) and TensorFlow writes its autograph files there:
    the suite used to leave ~20 folders in /tmp at every run. pytest keeps the folders of
    its last three sessions only.
    """
    folder = str(tmp_path_factory.mktemp("tmpdir"))
    with pytest.MonkeyPatch.context() as patch:  # a session's: `monkeypatch` is per test
        patch.setenv("TMPDIR", folder)
        patch.setattr(tempfile, "tempdir", folder)
        yield folder


@pytest.fixture(scope="session")
def gcs_emulator():
    """A GCS emulator for the whole session; STORAGE_EMULATOR_HOST points at it."""
    with emulator_host() as host:
        yield host


@pytest.fixture
def gcs_bucket(gcs_emulator) -> str:
    """A fresh, empty emulator bucket; yields its `gs://name` URI."""
    assert gcs_emulator.startswith("http://127.0.0.1:")
    return new_bucket()


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path) -> str:
    """The same test on a local folder and on a gs:// emulator bucket."""
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("gcs_bucket") + "/root"


@pytest.fixture
def kfp_local(tmp_path):
    """kfp.local with the in-environment subprocess runner; yields the pipeline root."""
    from kfp import local

    pipeline_root = str(tmp_path / "kfp-root")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=pipeline_root,
        raise_on_error=True,
    )
    return pipeline_root


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture(scope="session")
def shared_dir() -> str:
    """`../shared` (real ImageNet weights and photos); CI has it beside the clone."""
    if not os.path.isdir(os.path.join(SHARED, "weights")):
        pytest.skip("../shared (real weights and photos) is not beside this clone")
    return os.path.abspath(SHARED)


@pytest.fixture
def split_folder(tmp_path) -> str:
    """A split of 3 learnable generated classes (16 images each at 48 px)."""
    from devtools.imagegen import write_class_folders
    from kftransfer.components.core.config import SplitConfig
    from kftransfer.components.core.split import split_dataset, write_split

    root = str(tmp_path / "data")
    write_class_folders(root, {"red": 16, "green": 16, "blue": 16})
    config = SplitConfig(val_fraction=0.25, test_fraction=0.25, min_images_per_class=5)
    out = str(tmp_path / "split")
    write_split(split_dataset(root, config), out)
    return out


@pytest.fixture(scope="session")
def learnable(tmp_path_factory) -> dict[str, str]:
    """A learnable generated task, split and extracted once: 3 classes x 48 images at 48 px.

    Features come from VGG16 with seeded random weights at 32 px: colour separates the
    classes. (Random MobileNet features vanish to ~1e-12 through their depth, useless
    even for this.) Returns the data, split and features folders.
    """
    from devtools.imagegen import write_class_folders
    from kftransfer.components.core.config import ExtractConfig, SplitConfig
    from kftransfer.components.core.features import extract_features
    from kftransfer.components.core.split import split_dataset, write_split

    root = tmp_path_factory.mktemp("learnable")
    write_class_folders(str(root / "data"), {"red": 48, "green": 48, "blue": 48})
    config = SplitConfig(val_fraction=0.25, test_fraction=0.2, min_images_per_class=5)
    write_split(split_dataset(str(root / "data"), config), str(root / "split"))
    extract = ExtractConfig(backbone="vgg16", weights="none", image_size=32)
    extract_features(str(root / "split"), str(root / "features"), extract)
    return {
        "data": str(root / "data"),
        "split": str(root / "split"),
        "features": str(root / "features"),
    }


@pytest.fixture(scope="session")
def tuned(learnable, tmp_path_factory) -> dict[str, str]:
    """`learnable` plus a trained head and a (one-epoch) fine-tuned model: stage folders
    (`head`, `model`) and their model files (`head_file`, `model_file`)."""
    from kftransfer.components.core.config import FineTuneConfig, HeadConfig
    from kftransfer.components.core.fine_tune import fine_tune
    from kftransfer.components.core.heads import train_head
    from kftransfer.components.core.layout import stage_model

    folder = tmp_path_factory.mktemp("tuned")
    head_config = HeadConfig(head_epochs=20, head_normalize=True)
    head = str(folder / "head")
    train_head(learnable["features"], head_config).save(head, head_config)
    config = FineTuneConfig(fine_tune_epochs=1, fine_tune_batch_size=16)
    model = str(folder / "model")
    tuned = fine_tune(learnable["split"], learnable["features"], stage_model(head), config)
    tuned.save(model, config)
    files = {"head_file": stage_model(head), "model_file": stage_model(model)}
    return {**learnable, "head": head, "model": model, **files}
