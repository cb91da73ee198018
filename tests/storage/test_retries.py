"""Transient GCS errors are retried by the client's policy: the caller never sees them."""

import os

from devtools.proxy import Proxy
from kftransfer.components.core import gcs, generations, listing, storage


def test_transient_503s_are_retried(gcs_bucket, monkeypatch):
    with Proxy(os.environ["STORAGE_EMULATOR_HOST"], fail_first=True) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)  # a new client, via the proxy
        assert gcs.client()._connection.API_BASE_URL == proxy.url
        folder = f"{gcs_bucket}/flaky"
        storage.write_bytes(f"{folder}/data.bin", b"payload")
        assert storage.read_bytes(f"{folder}/data.bin") == b"payload"
        assert [info.uri for info in listing.list_files(folder)] == [f"{folder}/data.bin"]
        assert storage.exists(f"{folder}/data.bin")
        generations.write_if_generation(f"{gcs_bucket}/flaky/latest", b"1", 0)
    assert proxy.failures >= 4  # upload, download, list, metadata: each failed once first
