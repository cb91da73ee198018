"""The storage layer, the same cases on a local folder and on a GCS emulator bucket."""

import os
import re

import pytest

from kftransfer.components.core import folders, listing, storage


def test_write_then_read_round_trips_and_creates_parents(root):
    uri = storage.join(root, "a", "b", "c.bin")
    storage.write_bytes(uri, b"\x00\x01payload")
    assert storage.read_bytes(uri) == b"\x00\x01payload"
    storage.write_text(uri, "replaced")
    assert storage.read_text(uri) == "replaced"


def test_list_files_is_recursive_sorted_and_sized(root):
    for name, size in [("z.txt", 3), ("a/x.bin", 10), ("a/b/y.bin", 0)]:
        storage.write_bytes(storage.join(root, name), b"x" * size)
    listed = listing.list_files(root)
    assert [storage.relative_to(info.uri, root) for info in listed] == [
        "a/b/y.bin",
        "a/x.bin",
        "z.txt",
    ]
    assert [info.size for info in listed] == [0, 10, 3]


def test_exists_and_is_folder(root):
    uri = storage.join(root, "sub", "f.txt")
    assert not storage.exists(uri)
    assert not storage.is_folder(storage.join(root, "sub"))
    storage.write_text(uri, "hi")
    assert storage.exists(uri)
    assert storage.is_folder(storage.join(root, "sub"))
    assert not storage.exists(storage.join(root, "sub"))


def test_missing_file_and_folder_name_the_uri(root):
    missing = storage.join(root, "nope.bin")
    with pytest.raises(storage.NotFoundError, match="nope.bin: not found"):
        storage.read_bytes(missing)
    if storage.is_gcs(root):  # GCS has no folders: a prefix without objects lists empty
        assert listing.list_files(storage.join(root, "no-such-folder")) == []
        with pytest.raises(storage.NotFoundError, match="gs://no-such-bucket-7/x: not found"):
            listing.list_files("gs://no-such-bucket-7/x")
    else:
        with pytest.raises(storage.NotFoundError, match="no-such-folder: not found"):
            listing.list_files(storage.join(root, "no-such-folder"))


def test_streaming_read_in_chunks(root):
    uri = storage.join(root, "big.bin")
    data = bytes(range(256)) * 4096  # 1 MiB
    storage.write_bytes(uri, data)
    chunks = []
    with storage.open_read(uri) as stream:
        while chunk := stream.read(100_000):
            chunks.append(chunk)
    assert b"".join(chunks) == data
    assert len(chunks) == 11


def test_read_head_gives_the_first_bytes_or_all_of_a_shorter_file(root):
    for name, data in [("long.bin", b"0123456789"), ("short.bin", b"012"), ("empty.bin", b"")]:
        storage.write_bytes(storage.join(root, name), data)
    assert storage.read_head(storage.join(root, "long.bin"), 4) == b"0123"
    assert storage.read_head(storage.join(root, "short.bin"), 4) == b"012"
    assert storage.read_head(storage.join(root, "empty.bin"), 4) == b""
    with pytest.raises(storage.NotFoundError, match="nope.bin: not found"):
        storage.read_head(storage.join(root, "nope.bin"), 4)


@pytest.mark.timeout(30)  # before: opening the pipe waited for a writer, for ever
def test_only_regular_files_are_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "photo.jpg").write_bytes(b"jpeg")
    os.symlink(tmp_path / "photo.jpg", tmp_path / "link.jpg")
    pipe = str(tmp_path / "pipe.jpg")
    why = f"{pipe}: not a regular file but a named pipe (FIFO): only files are read"
    for read in (storage.read_bytes, lambda uri: storage.read_head(uri, 4), _open_and_read):
        with pytest.raises(storage.StorageError, match=re.escape(why)):
            read(pipe)
        assert read(str(tmp_path / "link.jpg")) == b"jpeg"
    assert storage.is_special_file(pipe) and storage.is_special_file(str(tmp_path))
    assert not storage.is_special_file(str(tmp_path / "link.jpg"))
    assert not storage.is_special_file(str(tmp_path / "gone.jpg"))
    assert not storage.is_special_file("gs://bucket/pipe.jpg")


def _open_and_read(uri: str) -> bytes:
    with storage.open_read(uri) as stream:
        return stream.read()


def test_failed_write_leaves_previous_content(root):
    uri = storage.join(root, "state.json")
    storage.write_text(uri, "old")
    with pytest.raises(RuntimeError), storage.open_write(uri) as out:
        out.write(b"half of the new")
        raise RuntimeError("crash mid-write")
    assert storage.read_text(uri) == "old"
    assert [storage.relative_to(i.uri, root) for i in listing.list_files(root)] == ["state.json"]


def test_copy_and_download(root, tmp_path):
    src = storage.join(root, "src.bin")
    storage.write_bytes(src, b"copy me")
    storage.copy(src, storage.join(root, "dst", "copy.bin"))
    assert storage.read_bytes(storage.join(root, "dst", "copy.bin")) == b"copy me"
    storage.copy(src, str(tmp_path / "local-copy.bin"))
    assert (tmp_path / "local-copy.bin").read_bytes() == b"copy me"
    storage.download_file(src, str(tmp_path / "dl.bin"))
    assert (tmp_path / "dl.bin").read_bytes() == b"copy me"


def test_read_many_keeps_order_and_reports_errors_per_file(root):
    uris = [storage.join(root, f"f{i:03d}") for i in range(40)]
    for i, uri in enumerate(uris):
        storage.write_bytes(uri, str(i).encode())
    missing = storage.join(root, "missing")
    results = list(storage.read_many([*uris[:20], missing, *uris[20:]], threads=8))
    assert [uri for uri, _ in results] == [*uris[:20], missing, *uris[20:]]
    assert isinstance(results[20][1], storage.NotFoundError)
    assert [int(data) for _, data in results if isinstance(data, bytes)] == list(range(40))


def test_replace_folder_swaps_in_a_new_version(root):
    folder = storage.join(root, "out")
    folders.replace_folder(folder, {"a.txt": b"1", "done.json": b"{}"}, marker="done.json")
    folders.replace_folder(folder, {"b.txt": b"2", "done.json": b"{}"}, marker="done.json")
    names = sorted(storage.relative_to(i.uri, folder) for i in listing.list_files(folder))
    assert names == ["b.txt", "done.json"]


def test_replace_folder_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(storage.StorageError, match="not an earlier output"):
        folders.replace_folder(str(tmp_path / "mine"), {"x": b""}, marker="stats.json")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


@pytest.mark.usefixtures("gcs_emulator")
def test_missing_bucket_is_one_clear_error():
    with pytest.raises(storage.NotFoundError, match="gs://no-such-bucket-42/x.txt: not found"):
        storage.read_bytes("gs://no-such-bucket-42/x.txt")


def test_uri_helpers():
    assert storage.join("gs://b/data", "cats", "1.jpg") == "gs://b/data/cats/1.jpg"
    assert storage.split_gcs("gs://b/data/cats/1.jpg") == ("b", "data/cats/1.jpg")
    assert storage.relative_to("gs://b/data/cats/1.jpg", "gs://b/data/") == "cats/1.jpg"
    assert storage.parent("gs://b/data/labels.csv") == "gs://b/data"
    with pytest.raises(storage.StorageError, match="not a gs://bucket/path URI"):
        storage.split_gcs("gs:///x")
