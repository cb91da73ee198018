"""What a source's listing makes of its folders: layouts, hidden files, system folders."""

import pytest

from devtools.imagegen import write_class_folders
from kftransfer.components.core import storage
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.sources import CLASS_FOLDERS, PRESPLIT, discover


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
        info.uri for info in storage.list_files(str(root)) if info.uri not in map(str, thumbs)
    )
    assert {c.label for c in found.candidates} == {"cats", "dogs"}
    hidden = {s.uri: (s.reason, s.detail) for s in found.skipped}
    assert hidden == dict.fromkeys(
        map(str, thumbs), ("hidden_file", "dot files and system files are ignored")
    )
