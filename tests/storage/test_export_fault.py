"""The emulator dies in the middle of an export: a clear error, and `latest` stays good."""

import signal
import subprocess
import threading
import time

import pytest

from devtools.emulator import free_port, start_emulator
from kftransfer.components.core import export, gcs, storage
from kftransfer.components.core.model_io import load_model


@pytest.fixture
def restartable_emulator(tmp_path, monkeypatch):
    """An emulator keeping its objects on disk, so it can die and come back with them."""
    port, data = free_port(), str(tmp_path / "gcs-data")
    state = {"process": start_emulator(port, data)}
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KFTRANSFER_GCS_RETRY_SECONDS", "3")  # give up quickly once it is gone
    gcs.client().create_bucket("models")

    def restart():
        state["process"] = start_emulator(port, data)

    yield state, restart
    state["process"].kill()
    state["process"].wait()


def test_emulator_stopped_mid_export(tuned, restartable_emulator):
    state, restart = restartable_emulator
    model, destination = load_model(tuned["model_file"]), "gs://models/classifier"
    good = storage.basename(export.export_model(model, ["a", "b", "c"], destination, "# v1", {}))
    errors = []

    def second_export():
        try:
            export.export_model(model, ["a", "b", "c"], destination, "# v2", {})
        except storage.StorageError as err:
            errors.append(err)

    worker = threading.Thread(target=second_export)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for the first object of the new version
        names = {
            storage.relative_to(i.uri, destination).split("/")[0]
            for i in storage.list_files(destination)
        }
        if names - {good, "latest"}:
            break
        time.sleep(0.02)
    # Stopped as a server stops (SIGINT): the request in hand completes, then nothing
    # answers. SIGKILL could cut the emulator's own metadata file in half (it rewrites it
    # in place on every upload), a failure of the emulator that real GCS does not have.
    state["process"].send_signal(signal.SIGINT)
    try:
        state["process"].wait(timeout=10)
    except subprocess.TimeoutExpired:  # a handler thread still serves a kept-alive connection
        state["process"].terminate()
        state["process"].wait(timeout=10)
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert len(errors) == 1
    message = str(errors[0])
    assert message.startswith("gs://models/classifier/") and "\n" not in message
    assert message.endswith(": storage unreachable (ConnectionError), gave up after retrying")
    restart()
    assert export.latest_version(destination) == good
    model_again, labels = export.load_exported(f"{destination}/{good}")
    assert labels == ["a", "b", "c"] and model_again.input_shape == model.input_shape
