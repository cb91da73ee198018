"""Storage goes away in the middle of an export: a clear error, and `latest` stays good."""

import pytest

from devtools.proxy import Proxy
from kftransfer.components.core import export, listing, storage, versions
from kftransfer.components.core.model_io import load_model


def staging_upload(method: str, path: str, body: bytes) -> bool:
    """The first object of a new version being written (an upload into `.staging/`)."""
    return method == "POST" and "/upload/" in path and b"/.staging/" in body[:4096]


def test_storage_gone_mid_export_is_one_line_and_latest_stays(tuned, gcs_bucket, monkeypatch):
    model = load_model(tuned["model_file"])
    destination = f"{gcs_bucket}/classifier"
    good = storage.basename(export.export_model(model, ["a", "b", "c"], destination, "# v1", {}))
    emulator = storage.gcs.client()._connection.API_BASE_URL
    with Proxy(emulator, cut_after=staging_upload) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        monkeypatch.setenv("KFTRANSFER_GCS_RETRY_SECONDS", "3")  # give up quickly
        with pytest.raises(storage.StorageError) as raised:
            export.export_model(model, ["a", "b", "c"], destination, "# v2", {})
        assert proxy.cut  # it died after the version's first object, as planned
    message = str(raised.value)
    assert message.startswith(f"{destination}/") and "\n" not in message
    assert message.endswith(": storage unreachable (ConnectionError), gave up after retrying")
    monkeypatch.undo()  # storage is back
    assert versions.latest_version(destination) == good
    model_again, labels = export.load_exported(f"{destination}/{good}")
    assert labels == ["a", "b", "c"] and model_again.input_shape == model.input_shape
    tops = {
        storage.relative_to(i.uri, destination).split("/")[0]
        for i in listing.list_files(destination)
    }
    assert {top for top in tops if top.isdigit()} == {good}  # the failed export published nothing
