"""What a source's listing makes of its folders: layouts, hidden files, system folders."""

import hashlib
import os
import shutil
import tempfile

import pytest

from devtools.imagegen import class_image, encode, write_class_folders
from kftransfer.components.core import listing, storage
from kftransfer.components.core.candidates import CLASS_FOLDERS, PRESPLIT
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.sources import discover
from kftransfer.components.core.split import split_dataset
from kftransfer.components.core.split_checks import precheck

NOBODY = 65534


def test_split_folders_beside_other_folders_are_refused_not_read_as_classes(tmp_path):
    # Before: classes 'test', 'train' and 'unlabeled'; 'cats' and 'dogs' were lost.
    root = tmp_path / "data"
    for split in ("train", "test"):
        write_class_folders(str(root / split), {"cats": 3, "dogs": 3})
    write_class_folders(str(root), {"unlabeled": 2})
    with pytest.raises(UserError) as refused:
        discover(str(root))
    assert str(refused.value) == (
        f"source {root} mixes split folders (test, train) with other folders (unlabeled): a "
        "pre-split tree holds only train/, validation/ and test/; move the others out of it"
    )
    (root / "unlabeled").rename(tmp_path / "unlabeled")
    assert discover(str(root)).layout == PRESPLIT


def test_a_class_named_like_a_split_is_a_class(tmp_path):
    """Vehicles: `train/` holds images, so it is the class `train`, not a split."""
    root = tmp_path / "vehicles"
    write_class_folders(str(root), {"bus": 2, "car": 2, "train": 2})
    found = discover(str(root))
    assert found.layout == CLASS_FOLDERS
    assert sorted({c.label for c in found.candidates}) == ["bus", "car", "train"]


def test_system_folders_beside_photos_are_hidden_not_images_or_classes(tmp_path):
    # Before: a Synology NAS's thumbnail of cats/0.png was an image of 'cats' (in another
    # split than its original), and a root @eaDir/ was a class.
    root = tmp_path / "nas"
    write_class_folders(str(root), {"cats": 2, "dogs": 2})
    original = next((root / "cats").iterdir())
    thumbs = {
        root / "cats" / "@eaDir" / original.name / "SYNOPHOTO_THUMB_M.jpg",
        root / "@eaDir" / "cats" / "SYNOINDEX_MEDIA_INFO",
        root / "#recycle" / "dogs" / "old.png",
        root / "$RECYCLE.BIN" / "S-1-5-21" / "x.png",
        root / "dogs" / "Thumbs.db",
        root / "dogs" / "desktop.ini",
        root / "__MACOSX" / "cats" / "._0.png",
    }
    for path in thumbs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(original.read_bytes())
    found = discover(str(root))
    assert sorted(c.uri for c in found.candidates) == sorted(
        info.uri for info in listing.list_files(str(root)) if info.uri not in map(str, thumbs)
    )
    assert {c.label for c in found.candidates} == {"cats", "dogs"}
    hidden = {s.uri: (s.reason, s.detail) for s in found.skipped}
    assert hidden == dict.fromkeys(
        map(str, thumbs), ("hidden_file", "dot files and system files are ignored")
    )


def listing_as_nobody(root: str) -> str:
    """`listing.list_files(root)` as a user without root's right to read any folder."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            if os.geteuid() == 0:
                os.setuid(NOBODY)
            said = f"listed {len(listing.list_files(root))} files"
        except UserError as err:
            said = f"error: {err}"
        os.write(write, said.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        return pipe.read()


def test_an_unlistable_folder_is_an_error_not_a_lost_class():
    # Before: os.walk left the folder out without a word: 'horses' lost all its images.
    root = tempfile.mkdtemp(dir="/tmp")  # not below the tmp_path only root may enter
    try:
        os.chmod(root, 0o755)
        write_class_folders(root, {"cats": 2, "horses": 2})
        for folder in ("", "cats"):
            os.chmod(os.path.join(root, folder), 0o755)
        assert listing_as_nobody(root) == "listed 4 files"
        os.chmod(os.path.join(root, "horses"), 0)
        assert listing_as_nobody(root) == (
            f"error: cannot list folder {root}/horses: Permission denied; give the user "
            "running kftransfer read access to it, or move it out"
        )
    finally:
        os.chmod(os.path.join(root, "horses"), 0o755)
        shutil.rmtree(root)


def test_a_file_replaced_with_its_old_size_and_time_is_hashed_again(tmp_path):
    # Before: the key was path, size and modification time: `tar`, `unzip` and `rsync -a`
    # restore the time, so the split reused the old image's hash (and its features).
    data, cache = str(tmp_path / "data"), str(tmp_path / "cache")
    write_class_folders(data, {"cat": 6, "dog": 6})
    config = SplitConfig(val_fraction=0.2, test_fraction=0.2, min_images_per_class=5)
    assert split_dataset(data, config, cache).stats["validation"]["checked"] == 12
    first = sorted((tmp_path / "data" / "cat").iterdir())[0]
    times = (first.stat().st_atime_ns, first.stat().st_mtime_ns)
    content = encode(class_image(0, 99), "BMP")  # a BMP's size depends on its sides only
    first.write_bytes(encode(class_image(0, 98), "BMP"))
    os.utime(first, ns=times)
    assert split_dataset(data, config, cache).stats["validation"]["checked"] == 1
    replacement = tmp_path / "new.bmp"
    replacement.write_bytes(content)
    os.utime(replacement, ns=times)
    assert first.stat().st_size == replacement.stat().st_size
    os.replace(replacement, first)  # same path, size and modification time, new content
    again = split_dataset(data, config, cache)
    assert again.stats["validation"] == {"checked": 1, "reused": 11}
    hashes = {row.uri: row.sha256 for row in again.rows}
    assert hashes[str(first)] == hashlib.sha256(content).hexdigest()


def test_a_csv_header_names_its_columns_in_the_words_datasets_use(tmp_path):
    # Before: `filename,class` was a row (a class 'class' of one missing file), and in
    # `image,split,label` the split column was read as the label.
    write_class_folders(str(tmp_path / "img"), {"cat": 2, "dog": 2})
    rows = [(f"img/{c}/img_{i:04d}.png", c) for c in ("cat", "dog") for i in range(2)]
    for header, line in (
        ("filename,class", "{0},{1}"),
        ("Image;Category", "{0};{1}"),
        ("image,split,label", "{0},train,{1}"),
        ("label,path", "{1},{0}"),
    ):
        path = tmp_path / "labels.csv"
        path.write_text("\n".join([header, *(line.format(*row) for row in rows)]))
        found = discover(str(path))
        assert [(c.uri, c.label) for c in found.candidates] == [
            (str(tmp_path / uri), label) for uri, label in rows
        ], header
        assert found.skipped == []


def test_a_vertex_ai_import_csv_is_refused_with_what_to_change(tmp_path):
    # Before: every image became a class named by its own path.
    path = tmp_path / "import.csv"
    path.write_text("TRAIN,gs://b/cat/1.jpg,cat\nTEST,gs://b/dog/2.jpg,dog\n")
    with pytest.raises(UserError) as refused:
        discover(str(path))
    assert str(refused.value) == (
        f"CSV {path} looks like a Vertex AI import file (`TRAIN,uri,label` rows): kftransfer "
        "splits by content itself; drop the first column"
    )


def test_a_file_uri_in_a_csv_is_the_local_file(tmp_path):
    # Before: `file:///data/x.png` was joined onto the CSV's folder: `<csv folder>/file:/...`.
    [image] = write_class_folders(str(tmp_path / "img"), {"cat": 1})
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "labels.csv").write_text(f"uri,label\nfile://{image},cat\n")
    [candidate] = discover(str(tmp_path / "list" / "labels.csv")).candidates
    assert candidate.uri == image


def test_an_empty_class_folder_is_a_class_of_0_images_not_a_lost_class(root):
    # Before: 'zebras' (empty) and 'horses' (only macOS files) dropped out without a word,
    # locally and in a bucket (where an empty folder is a placeholder object `zebras/`).
    data = storage.join(root, "data")
    write_class_folders(data, {"cats": 12, "dogs": 12})
    storage.write_bytes(storage.join(data, "horses", ".DS_Store"), b"\0")
    if storage.is_gcs(data):
        storage.write_bytes(f"{data}/zebras/", b"")
    else:
        os.makedirs(storage.join(data, "zebras"))
    assert discover(data).empty_classes == ["horses", "zebras"]
    with pytest.raises(UserError) as refused:
        precheck(data, SplitConfig())
    assert str(refused.value) == (
        "too few image files: 'horses' has 0, 'zebras' has 0, below --min-images-per-class "
        "10; fill or remove the empty class folders"
    )


def test_an_empty_class_folder_of_a_presplit_tree_is_a_class_of_0_images(root):
    # Before: train/zebras/ (and validation/zebras/) empty: the class dropped out unseen.
    data = storage.join(root, "data")
    for split, count in (("train", 12), ("validation", 4), ("test", 4)):
        write_class_folders(storage.join(data, split), {"cats": count, "dogs": count})
    for split in ("train", "validation"):
        if storage.is_gcs(data):
            storage.write_bytes(f"{data}/{split}/zebras/", b"")
        else:
            os.makedirs(storage.join(data, split, "zebras"))
    assert discover(data).empty_classes == ["zebras"]
    with pytest.raises(UserError, match="'zebras' has 0, below --min-images-per-class"):
        precheck(data, SplitConfig(min_images_per_class=4))
