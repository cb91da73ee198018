"""Hostile input, and the promised outcome for each: grows with every bug found.

Every case runs the real CLI. Unless a case says otherwise the promise is the README's
"Bad input": exit status 2, exactly one `error:` line on stderr, nothing on stdout, no
traceback, nothing written. Each entry: (arguments, what the error line must contain).
`{tmp}` is the case's temporary folder, `{model}` a trained three-class `.keras` file,
`{host}` a fake KFP API, `{nowhere}` a port nothing listens on (so a case that must fail
before contacting a server proves it does).
"""

import json
import os
import re
import shutil
from pathlib import Path

import keras
import pytest
from click.testing import CliRunner

from devtools.emulator import free_port
from devtools.imagegen import write_class_folders
from kftransfer.pipelines.cli import cli
from tests.pipeline.fake_kfp import FakeKfp


def data_with_a_split_file(tmp: Path) -> None:
    write_class_folders(str(tmp / "data"), {"cat": 12, "dog": 12})
    (tmp / "file").write_text("not a folder")


def data_with_a_named_pipe(tmp: Path) -> None:
    data_with_a_split_file(tmp)
    os.mkfifo(tmp / "pipe")


def kaggle_tree_without_train(tmp: Path) -> None:
    for split in ("valid", "test"):
        write_class_folders(str(tmp / "data" / split), {"cat": 3, "dog": 3})


def flat_split_folders(tmp: Path) -> None:
    for split in ("Train", "Test"):
        write_class_folders(str(tmp / "data" / split), {"x": 3})
        for image in (tmp / "data" / split / "x").iterdir():
            image.rename(tmp / "data" / split / image.name)


def a_thousand_classes(tmp: Path) -> None:
    for i in range(1000):
        write_class_folders(str(tmp / "data"), {f"class-{i:04d}": 1}, size=16, seed=i)


def an_iphone_folder(tmp: Path) -> None:
    write_class_folders(str(tmp / "data"), {"cat": 12, "dog": 12})
    heic = (Path(__file__).parents[1] / "data" / "iphone.heic").read_bytes()
    (tmp / "data" / "café").mkdir()
    for i in range(12):
        (tmp / "data" / "café" / f"IMG_{i:04d}.HEIC").write_bytes(heic + bytes([i]))


def a_tsv_labels_file(tmp: Path) -> None:
    (tmp / "labels.tsv").write_text("uri\tlabel\ncats/1.jpg\tcat\n")


def class_folders_one_level_down(tmp: Path) -> None:
    write_class_folders(str(tmp / "data" / "chest_xray"), {"normal": 12, "pneumonia": 12})


def bad_labels(tmp: Path, model: str, labels: str) -> None:
    (tmp / "m").mkdir()
    shutil.copy(model, tmp / "m" / "model.keras")
    (tmp / "m" / "labels.json").write_text(labels)
    write_class_folders(str(tmp / "img"), {"x": 1})


def corrupt_model(tmp: Path) -> None:
    (tmp / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    (tmp / "labels.json").write_text('["a"]')


def lambda_model(tmp: Path) -> None:
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp / "lambda.keras")
    (tmp / "labels.json").write_text('["a", "b", "c", "d"]')
    write_class_folders(str(tmp / "img"), {"x": 1})


CASES = {
    # split
    "split --out onto a file": (
        data_with_a_split_file, ["split", "{tmp}/data", "--out", "{tmp}/file"],
        "{tmp}/file is a file: give a folder to write to"),
    "split --out below a file": (
        data_with_a_split_file, ["split", "{tmp}/data", "--out", "{tmp}/file/split"],
        "{tmp}/file/split lies below the file {tmp}/file: give a folder path"),
    "split --out onto a named pipe": (  # before: every image read, then "Not a directory"
        data_with_a_named_pipe, ["split", "{tmp}/data", "--out", "{tmp}/pipe"],
        "error: {tmp}/pipe is a file: give a folder to write to"),
    "a pre-split tree without train": (
        kaggle_tree_without_train, ["split", "{tmp}/data", "--out", "{tmp}/out"],
        "has only split folders (test, valid) and no train/: add SOURCE/train/<class>/"),
    "images straight in split folders": (
        flat_split_folders, ["split", "{tmp}/data", "--out", "{tmp}/out"],
        "is a pre-split tree (test, train) but Test/ holds images directly: put them in class"),
    "a source that is a file": (  # before: "does not exist"
        a_tsv_labels_file, ["split", "{tmp}/labels.tsv", "--out", "{tmp}/out"],
        "source {tmp}/labels.tsv is a file: give a folder of class folders, or a CSV of "
        "uri,label rows named .csv (a tab-separated one too, with the header uri<TAB>label)"),
    "class folders one level down": (
        class_folders_one_level_down, ["split", "{tmp}/data", "--out", "{tmp}/out"],
        "only one class ('chest_xray') in {tmp}/data: a classifier needs at least two class "
        "folders (are they in {tmp}/data/chest_xray? give that as the source)"),
    "a SOURCE with a newline and an escape sequence": (  # before: an error of two lines
        None, ["split", "{tmp}/no\nsuch\x1b[2J", "--out", "{tmp}/out"],
        "error: source {tmp}/no\\nsuch\\x1b[2J does not exist: give a folder"),
    "1000 classes of one image": (
        a_thousand_classes, ["split", "{tmp}/data", "--out", "{tmp}/out"],
        "too few image files: 'class-0000' has 1, 'class-0001' has 1, 'class-0002' has 1, "
        "'class-0003' has 1, 'class-0004' has 1 and 995 more classes, below"),
    # run
    "run --pipeline-root is a file": (
        data_with_a_split_file, ["run", "{tmp}/data", "--pipeline-root", "{tmp}/file"],
        "error: --pipeline-root {tmp}/file is a file: give a folder to write to"),
    "run --pipeline-root onto a named pipe": (
        data_with_a_named_pipe, ["run", "{tmp}/data", "--pipeline-root", "{tmp}/pipe"],
        "error: --pipeline-root {tmp}/pipe is a file: give a folder to write to"),
    "run --pipeline-root in a bucket": (  # before: written to ./gs:/b/runs, said to be in b
        data_with_a_split_file, ["run", "{tmp}/data", "--pipeline-root", "gs://b/runs"],
        "Invalid value for '--pipeline-root': gs://b/runs is not on this machine: kfp.local "
        "writes a local run's artifacts to local folders only; give a folder here (SOURCE, "
        "--cache-uri and --export-uri may be gs://)"),
    "demo --out in a bucket": (
        None, ["demo", "--out", "gs://b/demo"],
        "Invalid value for '--out': gs://b/demo is not on this machine"),
    "run --unfreeze names no layer": (
        data_with_a_split_file,
        ["run", "{tmp}/data", "--backbone", "vgg16", "--unfreeze", "from_layer=block9_conv1",
         "--pipeline-root", "{tmp}/runs"],
        "--unfreeze from_layer=block9_conv1: the backbone has no layer 'block9_conv1' (its "
        "layers run from 'block1_conv1' to 'block5_pool')"),
    # compile
    "compile -o a folder": (
        data_with_a_split_file, ["compile", "-o", "{tmp}/data"],
        "-o {tmp}/data is a folder: give a file, e.g. {tmp}/data/pipeline.yaml"),
    "compile --cpu lots": (
        None, ["compile", "-o", "{tmp}/p.yaml", "--cpu", "fine_tune=lots"],
        "--cpu fine_tune=lots: give REQUEST[:LIMIT] like 4:8"),
    "compile --memory for no step": (
        None, ["compile", "-o", "{tmp}/p.yaml", "--memory", "trainer=8G"],
        "--memory trainer=...: no step 'trainer'"),
    "compile --node-selector with a space": (  # rule pod-fields: refused at pod creation
        None, ["compile", "-o", "{tmp}/p.yaml", "--node-selector", "gpu=tesla t4"],
        "--node-selector gpu=tesla t4: a value is at most 63 letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit"),
    "compile --pvc no claim can have": (  # its pod would wait, Pending, for ever
        None, ["compile", "-o", "{tmp}/p.yaml", "--pvc", "My_Photos=/mnt/photos"],
        "--pvc My_Photos=/mnt/photos: no claim can be named 'My_Photos': a name is lower-case "
        "letters, digits, '-' and '.', starting and ending with a letter or digit"),
    "compile --gpu-type without a domain": (
        None, ["compile", "-o", "{tmp}/p.yaml", "--gpu-type", "gpu"],
        "--gpu-type gpu: give the device plugin's resource name, e.g. nvidia.com/gpu or "
        "amd.com/gpu"),
    # schedule, submit: checked before any server is contacted
    "a second out of range": (
        None, ["schedule", "create", "gs://b/p", "--host", "{nowhere}", "--cron", "61 0 25 * * *"],
        "--cron '61 0 25 * * *': the second field '61' is out of range (0-59)"),
    "a backwards range": (
        None, ["schedule", "create", "gs://b/p", "--host", "{nowhere}", "--cron", "0 0 9-5 * * *"],
        "the hour field '9-5' has a range '9-5' that runs backwards"),
    "a five-field cron": (
        None, ["schedule", "create", "gs://b/p", "--host", "{nowhere}", "--cron", "0 3 * * *"],
        "--cron '0 3 * * *': KFP cron has 6 fields, seconds first"),
    "a bad parameter to submit": (
        None, ["submit", "gs://b/p", "--host", "{nowhere}", "--head-dropout", "1.5"],
        "bad parameters: --head-dropout must be in [0, 1), got 1.5"),
    "deleting a schedule the server does not have": (
        None, ["schedule", "delete", "no-such-id", "--host", "{host}"],
        "the KFP API at {host} refused the deletion: HTTP 404 fake KFP: no route"),
    # predict
    "labels.json that is not JSON": (
        lambda tmp, model: bad_labels(tmp, model, "cat, dog, bird"),
        ["predict", "{tmp}/m", "{tmp}/img"],
        "{tmp}/m/labels.json is not JSON (JSONDecodeError): it must be a list of class names"),
    "labels.json naming other classes": (
        lambda tmp, model: bad_labels(tmp, model, '["cat", "dog"]'),
        ["predict", "{tmp}/m", "{tmp}/img"],
        "{tmp}/m/labels.json names 2 classes but {tmp}/m/model.keras tells 3 apart"),
    "predict --batch-size 0": (
        None, ["predict", "{tmp}/m", "{tmp}/img", "--batch-size", "0"],
        "Invalid value for '--batch-size': 0 is not in the range x>=1."),
    "a corrupt model.keras": (
        corrupt_model,
        ["predict", "{tmp}/model.keras", "{tmp}"],
        "cannot load model {tmp}/model.keras: not a Keras .keras file (a zip archive); it is "
        "corrupt, truncated or another format"),
    "a model with a Lambda layer": (
        lambda_model, ["predict", "{tmp}/lambda.keras", "{tmp}/img"],
        "cannot load model {tmp}/lambda.keras: it holds a Lambda layer (Python code), which "
        "Keras' safe mode refuses to load"),
}  # fmt: skip


@pytest.fixture(scope="module")
def kfp():
    with FakeKfp() as server:
        yield server


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_line_exit_2(case, tmp_path, tuned, kfp, monkeypatch):
    make, args, expected = CASES[case]
    monkeypatch.chdir(tmp_path)  # what is written to a relative path is seen too
    if make is not None:
        if make.__code__.co_argcount == 2:
            make(tmp_path, tuned["model_file"])
        else:
            make(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    values = {"tmp": str(tmp_path), "host": kfp.host, "nowhere": f"http://127.0.0.1:{free_port()}"}
    result = CliRunner().invoke(cli, [arg.format(**values) for arg in args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert re.fullmatch(r"error: [^\n]+\n", result.stderr), result.stderr
    assert expected.format(**values) in result.stderr, result.stderr
    assert len(result.stderr) < 400
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_class_folder_of_iphone_heif_photos_is_an_error_not_a_lost_class(tmp_path):
    an_iphone_folder(tmp_path)  # before: the split went on without the class 'café'
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(
        cli, ["split", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (  # after the validation's progress lines
        "error: too few valid images: 'café' has 0 of 12 files (12 unsupported_format "
        "skipped), below --min-images-per-class 10; e.g. café/IMG_0000.HEIC: HEIF is not "
        "supported (iPhone photos: convert them to JPEG, or set Camera > Formats > Most "
        "Compatible); add images or lower the minimum"
    )
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_kaggle_tree_is_split_as_given(tmp_path):
    for seed, (split, count) in enumerate((("train", 12), ("valid", 4), ("Test", 4))):
        classes = {"cat": count, "dog": count}
        write_class_folders(str(tmp_path / "data" / split), classes, seed=seed)
    result = CliRunner().invoke(
        cli, ["split", str(tmp_path / "data"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["layout"] == "presplit"
    assert stats["totals"] == {"train": 24, "validation": 8, "test": 8}
    assert set(stats["counts"]) == {"cat", "dog"}


def test_a_dangling_symlink_is_skipped_and_reported(tmp_path):
    write_class_folders(str(tmp_path / "data"), {"cat": 30, "dog": 30})
    os.symlink(tmp_path / "gone.jpg", tmp_path / "data" / "cat" / "link.jpg")
    result = CliRunner().invoke(
        cli, ["split", str(tmp_path / "data"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 1 files (1 unreadable; e.g. cat/link.jpg: a symbolic link to" in result.stdout
    [skipped] = json.loads((tmp_path / "o" / "stats.json").read_text())["skipped"]
    assert skipped["uri"].endswith("cat/link.jpg") and skipped["reason"] == "unreadable"
    assert skipped["detail"] == f"a symbolic link to {tmp_path / 'gone.jpg'}, which does not exist"
