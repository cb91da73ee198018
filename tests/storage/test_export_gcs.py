"""Export to a gs:// destination, predict from it, and the generation precondition on `latest`."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from kftransfer.components.core import export, gcs, generations, listing, storage
from kftransfer.components.core.errors import PreconditionFailed
from kftransfer.components.core.layout import read_labels, read_rows
from kftransfer.components.core.model_io import load_model
from kftransfer.pipelines.cli import cli
from tests import refused_images


def test_export_to_gcs_then_predict_from_it(tuned, gcs_bucket):
    destination = f"{gcs_bucket}/models"
    labels = read_labels(tuned["split"])
    target = export.export_model(load_model(tuned["model_file"]), labels, destination, "# card", {})
    version = storage.basename(target)
    assert storage.read_text(f"{destination}/latest") == version
    names = {storage.relative_to(i.uri, target) for i in listing.list_files(target)}
    assert {"saved_model.pb", "model.keras", "labels.json", "model_card.md"} <= names
    assert any(name.startswith("variables/") for name in names)
    image = read_rows(tuned["split"], "test")[0]
    storage.write_bytes(f"{gcs_bucket}/new/photo.png", Path(image.uri).read_bytes())
    storage.write_bytes(f"{gcs_bucket}/new/._photo.png", b"\x00\x05\x16\x07")  # macOS copy
    result = CliRunner().invoke(cli, ["predict", destination, f"{gcs_bucket}/new/", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "note: left out 1 hidden file\n"
    record = json.loads(result.stdout)
    assert record["image"] == f"{gcs_bucket}/new/photo.png"
    assert record["predictions"][0]["label"] == image.label


class RequestLog:
    """Records the URL of every request the storage client sends."""

    def __init__(self):
        self.urls = []

    def __call__(self, response, *_args, **_kwargs):
        self.urls.append(response.request.url)


def test_latest_is_written_with_a_generation_precondition(gcs_bucket):
    # The emulator ignores ifGenerationMatch (../shared/notes.md): assert what is sent.
    log = RequestLog()
    session = gcs.client()._http
    session.hooks["response"].append(log)
    try:
        pointer = f"{gcs_bucket}/models/latest"
        generations.write_if_generation(pointer, b"1", 0)
        _, generation = generations.read_versioned(pointer)
        assert generation > 0
        generations.write_if_generation(pointer, b"2", generation)
    finally:
        session.hooks["response"].remove(log)
    uploads = [url for url in log.urls if "/upload/" in url]
    assert "ifGenerationMatch=0" in uploads[0]
    assert f"ifGenerationMatch={generation}" in uploads[1]
    assert storage.read_text(pointer) == "2"


@pytest.mark.skipif(not os.environ.get("KFTRANSFER_REAL_GCS_BUCKET"), reason="needs real GCS")
def test_real_gcs_rejects_a_stale_generation():
    """Run against a real bucket: KFTRANSFER_REAL_GCS_BUCKET=gs://my-scratch-bucket."""
    pointer = f"{os.environ['KFTRANSFER_REAL_GCS_BUCKET']}/kftransfer-test/latest"
    storage.write_text(pointer, "1")
    _, generation = generations.read_versioned(pointer)
    generations.write_if_generation(pointer, b"2", generation)
    with pytest.raises(PreconditionFailed):
        generations.write_if_generation(pointer, b"3", generation)


def test_predict_checks_a_bucket_images_header_in_the_bytes_it_reads_anyway(tuned, gcs_bucket):
    # Before: one ranged read of each object's head, then the whole object: two requests
    # per image (0.86-0.90 of the images/s, docs/benchmarks.md).
    from kftransfer.components.core import predict

    good = read_rows(tuned["split"], "test")[0]
    files = refused_images.files(good.uri)
    uris = [f"{gcs_bucket}/new/{name}" for name in files]
    for uri, data in zip(uris, files.values(), strict=True):
        storage.write_bytes(uri, data)
    model, labels = load_model(tuned["model_file"]), read_labels(tuned["split"])
    log = RequestLog()
    session = gcs.client()._http
    session.hooks["response"].append(log)
    try:
        answers = list(predict.predict(model, labels, uris, max_pixels=refused_images.CAP))
    finally:
        session.hooks["response"].remove(log)
    assert [a.error for a in answers] == refused_images.ERRORS
    assert answers[0].label == good.label
    reads = sorted(url.split("/o/")[1].split("?")[0] for url in log.urls if "alt=media" in url)
    assert reads == ["new%2Fa.png", "new%2Fb.bmp", "new%2Fc.png"]  # one read per image
