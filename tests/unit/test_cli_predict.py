"""`kftransfer predict`: top-k lines, JSON lines, per-file errors, model lookup."""

import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kftransfer.components.core import export, predict, versions
from kftransfer.components.core.layout import read_labels, read_rows
from kftransfer.components.core.model_io import load_model
from kftransfer.pipelines.cli import cli
from tests import refused_images
from tests.shell_job import AS_A_SHELL_JOB, press_ctrl_c


@pytest.fixture(scope="module")
def exported(tuned, tmp_path_factory) -> str:
    destination = str(tmp_path_factory.mktemp("exports") / "models")
    labels = read_labels(tuned["split"])
    export.export_model(load_model(tuned["model_file"]), labels, destination, "# card", {})
    return destination


def invoke(*args):
    return CliRunner().invoke(cli, ["predict", *args], catch_exceptions=False)


def test_predicts_files_and_folders_with_top_k(tuned, exported, tmp_path):
    rows = read_rows(tuned["split"], "test")[:3]
    folder = tmp_path / "batch"
    folder.mkdir()
    for i, row in enumerate(rows):
        shutil.copy(row.uri, folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image, and not picked from a folder")
    result = invoke(exported, str(folder), rows[0].uri, "--top-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        str(folder / "0.png"), str(folder / "1.png"), str(folder / "2.png"), rows[0].uri
    ]  # fmt: skip
    first = lines[0].split(": ", 1)[1].split(", ")
    assert len(first) == 2
    probabilities = [float(part.split()[1]) for part in first]
    assert probabilities == sorted(probabilities, reverse=True)
    assert first[0].split()[0] == rows[0].label  # the learnable task is learnt


def test_json_lines_and_a_per_file_error(tuned, exported, tmp_path):
    good = read_rows(tuned["split"], "test")[0].uri
    bad = tmp_path / "fake.jpg"
    bad.write_text("this is text")
    version = os.path.join(exported, versions.latest_version(exported))
    result = invoke(version, str(bad), good, "--json", "--top-k", "3")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {bad}: not_an_image: not a recognised image format"
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0] == {"image": str(bad), "error": "not_an_image: not a recognised image format"}
    assert records[1]["image"] == good
    assert [p["label"] for p in records[1]["predictions"]][0] == read_rows(tuned["split"], "test")[
        0
    ].label
    assert len(records[1]["predictions"]) == 3
    assert sum(p["probability"] for p in records[1]["predictions"]) == pytest.approx(1, abs=1e-5)


@pytest.mark.timeout(300, method="thread")  # before: TensorFlow waited for a writer, for ever
def test_a_named_pipe_among_the_images_gets_an_error_line_at_once(tuned, exported, tmp_path):
    good = read_rows(tuned["split"], "test")[0]
    shutil.copy(good.uri, tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    result = invoke(exported, str(tmp_path))
    assert result.exit_code == 1
    pipe = tmp_path / "b.png"
    why = f"{pipe}: not a regular file but a named pipe (FIFO): only files are read"
    assert result.stderr.strip() == f"error: {pipe}: unreadable: {why}"
    assert result.stdout.startswith(f"{tmp_path / 'a.png'}: {good.label} ")


def test_images_the_split_refuses_from_their_header_are_not_decoded(tuned, exported, tmp_path):
    # Before: predict decoded whatever TensorFlow could (a 1.1 MB PNG of 20000x20000 px
    # took 1.9 GB), and answered a palette BMP from its palette indices.
    good = read_rows(tuned["split"], "test")[0]
    for name, data in refused_images.files(good.uri).items():
        (tmp_path / name).write_bytes(data)
    model, labels, _ = predict.load_predictor(exported)
    uris = [str(tmp_path / name) for name in ("a.png", "b.bmp", "c.png")]
    answers = list(predict.predict(model, labels, uris, max_pixels=refused_images.CAP))
    assert [a.error for a in answers] == refused_images.ERRORS
    assert answers[0].label == good.label
    result = invoke(exported, str(tmp_path))  # the split's cap: 50 MP
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {uris[1]}: {answers[1].error}"]
    assert list(predict.predict(model, labels, uris[1:2]))[0].error == answers[1].error


def test_headers_are_checked_a_window_at_a_time_and_answers_keep_their_order(
    tuned, exported, tmp_path, monkeypatch
):
    # The header pass runs WINDOW images ahead of the batches, so a large folder's first
    # answers do not wait for every header (100,000 on GCS: minutes).
    from PIL import Image

    rows = read_rows(tuned["split"], "test")[:4]
    uris = [row.uri for row in rows]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).quantize(colors=2).save(tmp_path / "p.bmp")
    uris.insert(2, str(tmp_path / "p.bmp"))  # the first image of the second window
    checked = []
    refused_by_header = predict._refused_by_header

    def spy(window, skip, max_pixels):
        checked.append(len(window))
        return refused_by_header(window, skip, max_pixels)

    model, labels, _ = predict.load_predictor(exported)
    rounded = lambda answer: [(label, round(p, 4)) for label, p in answer.top]  # noqa: E731
    at_once = [rounded(a) for a in predict.predict(model, labels, [row.uri for row in rows])]
    monkeypatch.setattr(predict, "WINDOW", 2)
    monkeypatch.setattr(predict, "_refused_by_header", spy)
    answers = list(predict.predict(model, labels, uris))
    assert checked == [2, 2, 1]
    assert [a.uri for a in answers] == uris
    assert [bool(a.error) for a in answers] == [False, False, True, False, False]
    assert [rounded(a) for a in answers if not a.error] == at_once


def test_keras_file_needs_labels_beside_it(tuned, tmp_path):
    path = tmp_path / "model.keras"
    shutil.copy(tuned["model_file"], path)
    result = CliRunner().invoke(cli, ["predict", str(path), tuned["split"]])
    assert result.exit_code == 2
    assert result.stderr == f"error: no labels.json beside {path}: the class names are needed\n"
    (tmp_path / "labels.json").write_text(json.dumps(read_labels(tuned["split"])))
    image = read_rows(tuned["split"], "test")[0].uri
    assert invoke(str(path), image, "--top-k", "1").stdout.startswith(f"{image}: ")


def test_export_folder_without_labels_is_exit_2(tmp_path):
    (tmp_path / "models").mkdir()
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "models"), str(tmp_path)])
    assert result.exit_code == 2
    assert "has no labels.json: give an export folder or a version folder" in result.stderr


def test_a_model_argument_of_the_wrong_kind_says_what_to_give(exported, tmp_path):
    """Before: `DEST/latest` and a version's `saved_model.pb` gave `.../latest/latest: Not a
    directory`, a missing path `has no labels.json`, and a version without its model.keras
    `.../model.keras: not found`."""
    version = versions.resolve_model_folder(exported)
    (tmp_path / "only-labels").mkdir()
    shutil.copy(os.path.join(version, "labels.json"), tmp_path / "only-labels")
    expected = {
        os.path.join(exported, "latest"): " is a file: give an export folder, a version folder "
        "or a .keras file (predict reads model.keras; saved_model.pb and model.tflite are "
        "for serving)",
        os.path.join(version, "saved_model.pb"): " is a file: give an export folder",
        str(tmp_path / "nowhere"): ": no such export folder, version folder or .keras file",
        str(tmp_path / "only-labels"): " has no model.keras: give an export folder or a "
        "version folder",
    }
    for model, said in expected.items():
        result = CliRunner().invoke(cli, ["predict", model, str(tmp_path)])
        assert result.exit_code == 2, model
        assert result.stderr.startswith(f"error: {model}{said}"), result.stderr


def test_folders_give_their_images_and_say_what_they_left_out(tuned, exported, tmp_path):
    """Image names of any case (.JFIF, .jpe too); hidden files and sidecars are left out."""
    rows = read_rows(tuned["split"], "test")[:2]
    folder = tmp_path / "camera"
    (folder / "2024").mkdir(parents=True)
    shutil.copy(rows[0].uri, folder / "2024" / "a.JFIF")
    shutil.copy(rows[1].uri, folder / "b.jpe")
    (folder / "._b.jpe").write_bytes(b"\x00\x05\x16\x07" + bytes(60))  # a macOS resource fork
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "@eaDir" / "b.jpe").mkdir(parents=True)  # a Synology NAS's thumbnail of b.jpe
    shutil.copy(rows[1].uri, folder / "@eaDir" / "b.jpe" / "SYNOPHOTO_THUMB_M.jpg")
    (folder / "b.xmp").write_text("<x:xmpmeta/>")  # a photo editor's sidecar
    (folder / "c.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    result = invoke(exported, str(folder))
    assert result.exit_code == 0, result.output
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [
        str(folder / "2024" / "a.JFIF"), str(folder / "b.jpe")
    ]  # fmt: skip
    assert result.stderr == (
        "note: left out 3 hidden files and 2 files not named as images (.xmp 1, .heic 1); .heic "
        "is HEIF (iPhone photos: convert them to JPEG, or set Camera > Formats > Most "
        "Compatible)\n"
    )


def test_a_folder_without_images_is_exit_2_and_says_why(exported, tmp_path):
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    result = CliRunner().invoke(cli, ["predict", exported, str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no image files (.bmp .gif .jfif .jpe .jpeg .jpg .png .webp) in {tmp_path}: "
        "left out 1 file not named as images (.heic 1); .heic is HEIF (iPhone photos: convert "
        "them to JPEG, or set Camera > Formats > Most Compatible)\n"
    )


def test_answers_come_in_order_with_failures_anywhere(tuned, exported, tmp_path):
    """Batches are answered as they are done; a dropped image keeps its place in the output."""
    good = [row.uri for row in read_rows(tuned["split"], "test")[:4]]
    (tmp_path / "text.png").write_text("not an image")
    bad = str(tmp_path / "text.png")
    uris = [bad, good[0], good[1], bad, good[2], good[3], bad]
    network, labels, _ = predict.load_predictor(exported)
    answers = list(predict.predict(network, labels, uris, batch_size=2))
    assert [a.uri for a in answers] == uris
    assert [bool(a.error) for a in answers] == [u == bad for u in uris]
    truth = {row.uri: row.label for row in read_rows(tuned["split"], "test")}
    assert [a.label for a in answers if not a.error] == [truth[u] for u in good]


@pytest.mark.parametrize(
    "serving", ["{", "null", "[]", '{"min_confidence": null}', '{"min_confidence": 5}']
)
def test_a_bad_serving_json_is_one_line_exit_2(tuned, exported, tmp_path, serving):
    # Before: a traceback (JSONDecodeError, TypeError, AttributeError), or for 5 every
    # answer "unknown", silently.
    version = tmp_path / "version"
    shutil.copytree(versions.resolve_model_folder(exported), version)
    (version / "serving.json").write_text(serving)
    image = read_rows(tuned["split"], "test")[0].uri
    result = CliRunner().invoke(cli, ["predict", str(version), image])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f'error: {version}/serving.json must be a JSON object whose "min_confidence" is a '
        'number from 0 to 1, e.g. {"min_confidence": 0.5}: fix it, or export the version '
        "again\n"
    )


def test_a_production_version_rolled_back_by_deleting_it_falls_back_to_the_served_one(
    tuned, tmp_path, caplog
):
    # TF Serving serves the highest version, so deleting the newest rolls back; `latest`
    # still named it. Before: predict DEST, the evaluation and warm start all failed with
    # "DEST/<v> has no labels.json: give an export folder or a version folder".
    destination = str(tmp_path / "models")
    labels = read_labels(tuned["split"])
    model = load_model(tuned["model_file"])
    first = export.export_model(model, labels, destination, "# first", {})
    second = export.export_model(model, labels, destination, "# second", {})
    assert versions.latest_version(destination) == os.path.basename(second)
    shutil.rmtree(second)
    with caplog.at_level("WARNING"):
        assert versions.latest_version(destination) == os.path.basename(first)
    assert f"names version {os.path.basename(second)}, which is not there: using " in caplog.text
    image = read_rows(tuned["split"], "test")[0].uri
    result = CliRunner().invoke(cli, ["predict", destination, image, "--top-k", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{image}: ")
    os.remove(os.path.join(destination, "latest"))  # before: "models has no labels.json"
    with caplog.at_level("WARNING"):
        assert versions.latest_version(destination) == os.path.basename(first)
    assert "latest is missing: using " in caplog.text
    result = CliRunner().invoke(cli, ["predict", destination, image, "--top-k", "1"])
    assert result.exit_code == 0, result.output
    shutil.rmtree(first)
    assert versions.latest_version(destination) is None  # nothing left: as before any export


def test_a_class_named_unknown_is_refused_while_the_model_may_abstain(tuned, tmp_path):
    labels = ["unknown", *read_labels(tuned["split"])[1:]]
    destination = str(tmp_path / "models")
    serving = {"temperature": 1.0, "min_confidence": 0.5}
    export.export_model(load_model(tuned["model_file"]), labels, destination, "#", {},
                        serving=serving)  # fmt: skip
    image = read_rows(tuned["split"], "test")[0].uri
    result = CliRunner().invoke(cli, ["predict", destination, image])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {destination} has a class named 'unknown', which is also the answer below the "
        "minimum confidence 0.5: give --min-confidence 0, or rename the class and retrain\n"
    )
    answered = invoke(destination, image, "--min-confidence", "0", "--top-k", "1")
    assert answered.exit_code == 0
    assert re.fullmatch(rf"{re.escape(image)}: \w+ [01]\.\d{{3}}\n", answered.stdout)


def test_a_file_name_that_is_not_utf8_is_predicted_and_shown(tuned, exported, tmp_path):
    """A Latin-1 `café.png` unzipped on Linux: Python lists it with a surrogate."""
    folder = tmp_path / "old-zip"
    folder.mkdir()
    shutil.copy(
        read_rows(tuned["split"], "test")[0].uri, os.fsdecode(bytes(folder) + b"/caf\xe9.png")
    )
    result = invoke(exported, str(folder), "--json")
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["image"] == f"{folder}/caf\ufffd.png"


def test_control_characters_in_a_name_are_shown_escaped_one_line_per_image(
    tuned, exported, tmp_path
):
    # before: the newline split an answer into two lines, and the escape sequence was
    # sent to the terminal as it was (here, one that clears the screen)
    folder = tmp_path / "odd"
    folder.mkdir()
    for name in ["two\nlines.png", "\x1b[2Jclear.png"]:
        shutil.copy(read_rows(tuned["split"], "test")[0].uri, folder / name)
    result = invoke(exported, str(folder), "--top-k", "1")
    assert result.exit_code == 0, result.output
    shown = [line.split(": ")[0] for line in result.stdout.splitlines()]
    assert shown == [f"{folder}/\\x1b[2Jclear.png", f"{folder}/two\\nlines.png"]
    records = [
        json.loads(line) for line in invoke(exported, str(folder), "--json").stdout.splitlines()
    ]
    assert [r["image"] for r in records] == [
        f"{folder}/\x1b[2Jclear.png",
        f"{folder}/two\nlines.png",
    ]


def test_output_into_a_reader_that_stops_early_ends_quietly(tuned, exported):
    # `kftransfer predict DEST photos/ | head`: before, the closed pipe was reported as
    # "error: Broken pipe: check the path", exit 2. The reader here is gone before the
    # first line is written, so the pipe is surely broken (a shell's `head` may read all).
    images = [row.uri for row in read_rows(tuned["split"], "test")]
    main = "from kftransfer.pipelines.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", main, "predict", exported, *images, "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    process.stdout.close()
    stderr = process.communicate(timeout=120)[1]
    # 128 + SIGPIPE, as `yes | head`; and no TensorFlow C++ log lines (native_log.py)
    assert (process.returncode, stderr) == (141, "")


def test_ctrl_c_says_how_many_images_were_answered_and_exits_130(tuned, exported):
    # before: click's bare "Aborted!" and exit status 1
    images = [row.uri for row in read_rows(tuned["split"], "test")] * 40  # one at a time: ~s
    main = "from kftransfer.pipelines.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", main, "predict", exported, *images, "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **AS_A_SHELL_JOB,
    )  # fmt: skip
    first = process.stdout.readline()  # the first answer: it is predicting
    press_ctrl_c(process)
    rest, stderr = process.communicate(timeout=120)
    answered = len([first, *rest.splitlines()])
    assert process.returncode == 130, stderr
    assert stderr == f"interrupted: answered {answered} of {len(images)} images\n"
    assert 0 < answered < len(images)


def test_a_shown_probability_never_rounds_up_past_the_threshold():
    # Before: 0.99999994 showed as 1.0 (JSON) or 1.000 (text) beside `unknown` below 1.
    nearly = float(np.float32(0.99999994))
    answer = predict.Prediction("x.png", [("red", nearly)], label="unknown", abstained=True)
    assert answer.to_json()["predictions"] == [{"label": "red", "probability": 0.999999}]
    assert [predict.shown(p, 3) for p in (nearly, 0.29, 0.5, 0.0004)] == [0.999, 0.29, 0.5, 0.0]


def test_a_jpeg_whose_size_lies_past_the_first_read_is_still_judged_by_it(exported, tmp_path):
    """Before: ICC or XMP segments before the frame header pushed the size past the
    128 KiB predict reads, so a JPEG over the pixel cap was decoded unchecked."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(out, "JPEG")  # 64x64 at 1/8
    plain = out.getvalue()
    comment = b"\xff\xfe" + (65535).to_bytes(2, "big") + bytes(65533)  # a 64 KiB segment
    padded = plain[:2] + 3 * comment + plain[2:]  # SOI, the segments, then the rest
    assert len(padded) > predict.HEAD_BYTES
    for name, data in (("plain.jpg", plain), ("padded.jpg", padded)):
        (tmp_path / name).write_bytes(data)
    model, labels, _ = predict.load_predictor(exported)
    uris = [str(tmp_path / "plain.jpg"), str(tmp_path / "padded.jpg")]
    answers = list(predict.predict(model, labels, uris, max_pixels=refused_images.CAP))
    assert [a.error for a in answers] == [answers[0].error] * 2
    assert answers[0].error == (
        "decompression_bomb: 512x512 px (decoded at 1/8 scale: 4096 px) > 2304 px cap"
    )


def test_an_animated_gif_over_the_cap_in_all_its_frames_is_not_decoded(exported, tmp_path):
    """Before: only its first frame counted, though TensorFlow decodes all of them."""
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), color=(25 * i, 0, 0)) for i in range(10)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    model, labels, _ = predict.load_predictor(exported)
    answers = list(predict.predict(model, labels, [str(tmp_path / "a.gif")], max_pixels=2304))
    assert answers[0].error == (
        "decompression_bomb: 32x32 px x 10 frames (TensorFlow decodes every frame of a GIF) "
        "> 2304 px cap"
    )
