"""The split: exact per-class counts under the hash rule, stability, duplicates, layouts."""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from devtools.imagegen import broken_files, class_image, encode, write_class_folders
from kftransfer.components.core import storage
from kftransfer.components.core.candidates import same_classes
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layout import read_rows
from kftransfer.components.core.sources import fingerprint
from kftransfer.components.core.split import assign_split, split_dataset, write_split
from kftransfer.components.core.split_checks import precheck, skipped_line

CONFIG = SplitConfig(val_fraction=0.2, test_fraction=0.2, seed=7, min_images_per_class=5)
COUNTS = {"apple": 30, "banana": 25, "cherry": 20}


def reference_split(sha256: str, seed: int, val: float, test: float) -> str:
    """The documented rule, written out independently."""
    u = int(hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()[:16], 16) / 2**64
    return "test" if u < test else "validation" if u < test + val else "train"


def sha_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_assign_split_formula_is_pinned():
    # Golden values: a change of the formula would silently reshuffle users' test sets.
    assert [assign_split(f"{i:064x}", 0, 0.15, 0.15) for i in range(8)] == [
        reference_split(f"{i:064x}", 0, 0.15, 0.15) for i in range(8)
    ]
    assert [assign_split("0" * 64, seed, 0.15, 0.15) for seed in range(6)] == [
        "train", "train", "validation", "train", "train", "test"
    ]  # fmt: skip


def test_assign_split_meets_fractions_over_many_images():
    splits = [assign_split(f"{i:064x}", 1, 0.1, 0.2) for i in range(20_000)]
    assert splits.count("test") / 20_000 == pytest.approx(0.2, abs=0.01)
    assert splits.count("validation") / 20_000 == pytest.approx(0.1, abs=0.01)


@pytest.fixture
def dataset(tmp_path) -> str:
    root = str(tmp_path / "data")
    write_class_folders(root, COUNTS)
    for name, (data, _) in broken_files().items():
        storage.write_bytes(storage.join(root, "banana", name), data)
    storage.write_bytes(storage.join(root, "README.txt"), b"about this data")
    storage.write_bytes(storage.join(root, "apple", ".DS_Store"), b"\0")
    return root


def test_exact_stratified_counts_and_every_skip_reported(dataset):
    result = split_dataset(dataset, CONFIG)
    expected = {label: dict.fromkeys(("train", "validation", "test"), 0) for label in COUNTS}
    for label in COUNTS:
        for name in os.listdir(os.path.join(dataset, label)):
            if name.startswith("img_"):
                sha = sha_of(os.path.join(dataset, label, name))
                expected[label][reference_split(sha, 7, 0.2, 0.2)] += 1
    assert result.stats["counts"] == expected
    assert result.labels == ["apple", "banana", "cherry"]
    assert sum(sum(c.values()) for c in expected.values()) == 75
    for label, count in COUNTS.items():  # stratified: each class near its fractions
        assert 0.05 <= expected[label]["test"] / count <= 0.4
    skipped = {os.path.basename(s["uri"]): s["reason"] for s in result.stats["skipped"]}
    assert skipped == {
        **{name: reason for name, (_, reason) in broken_files().items()},
        "README.txt": "outside_class_folder",
        ".DS_Store": "hidden_file",
    }


def test_written_files_follow_the_contract(dataset, tmp_path):
    result = split_dataset(dataset, CONFIG)
    out = str(tmp_path / "split")
    write_split(result, out)
    assert sorted(os.listdir(out)) == [
        "labels.json", "stats.json", "test.csv", "train.csv", "validation.csv"
    ]  # fmt: skip
    assert json.loads(Path(os.path.join(out, "labels.json")).read_text()) == result.labels
    header = Path(os.path.join(out, "train.csv")).read_text().splitlines()[0]
    assert header == "uri,label,sha256"
    rows = read_rows(out, "train")
    assert len(rows) == result.stats["totals"]["train"]
    assert all(sha_of(row.uri) == row.sha256 for row in rows)
    stats = json.loads(Path(os.path.join(out, "stats.json")).read_text())
    assert stats["skipped_by_reason"]["corrupt"] == 2


def test_adding_images_moves_no_existing_image(tmp_path):
    root = str(tmp_path / "data")
    write_class_folders(root, COUNTS)
    before = {row.uri: row.split for row in split_dataset(root, CONFIG).rows}
    write_class_folders(root, {k: n // 10 for k, n in COUNTS.items()}, start=1000)
    after = {row.uri: row.split for row in split_dataset(root, CONFIG).rows}
    assert len(after) == len(before) + 7
    assert {uri: after[uri] for uri in before} == before


def test_seed_changes_the_assignment(tmp_path):
    root = str(tmp_path / "data")
    write_class_folders(root, COUNTS)
    first = {r.uri: r.split for r in split_dataset(root, CONFIG).rows}
    other = SplitConfig(val_fraction=0.2, test_fraction=0.2, seed=8, min_images_per_class=5)
    assert first != {r.uri: r.split for r in split_dataset(root, other).rows}


def test_duplicates_are_kept_once_and_conflicting_labels_reported(tmp_path):
    root = str(tmp_path / "data")
    write_class_folders(root, COUNTS)
    twin = storage.read_bytes(storage.join(root, "apple", "img_0000.png"))
    storage.write_bytes(storage.join(root, "apple", "zz-copy.png"), twin)
    clash = storage.read_bytes(storage.join(root, "apple", "img_0001.png"))
    storage.write_bytes(storage.join(root, "cherry", "clash.png"), clash)
    result = split_dataset(root, CONFIG)
    reasons = {os.path.relpath(s["uri"], root): s["reason"] for s in result.stats["skipped"]}
    assert reasons == {
        "apple/zz-copy.png": "duplicate",
        "apple/img_0001.png": "label_conflict",
        "cherry/clash.png": "label_conflict",
    }
    assert [sorted(f["label"] for f in c["files"]) for c in result.stats["label_conflicts"]] == [
        ["apple", "cherry"]
    ]
    assert len({row.sha256 for row in result.rows}) == len(result.rows)


def test_presplit_tree_is_kept_and_duplicates_never_straddle(tmp_path):
    root = tmp_path / "data"
    # One seed per folder, fixed: the seeds were hash(split) % 1000, which changes with
    # PYTHONHASHSEED; two folders of one seed hold the same images, skipped as duplicates
    # (a CI run found the validation split empty).
    for seed, (folder, n) in enumerate([("train", 12), ("val", 4), ("test", 4)]):
        write_class_folders(str(root / folder), {"cat": n, "dog": n}, seed=seed)
    leaked = (root / "test" / "dog" / "img_0000.png").read_bytes()
    (root / "train" / "dog" / "leak.png").write_bytes(leaked)
    result = split_dataset(str(root), CONFIG)
    assert result.stats["layout"] == "presplit"
    assert result.stats["counts"] == {
        "cat": {"train": 12, "validation": 4, "test": 4},
        "dog": {"train": 12, "validation": 4, "test": 4},
    }
    assert [(os.path.relpath(s["uri"], root), s["reason"]) for s in result.stats["skipped"]] == [
        ("train/dog/leak.png", "duplicate")
    ]


@pytest.mark.parametrize("folders", [("train", "test"), ("train",)])
def test_a_split_the_tree_lacks_is_taken_from_train_by_the_hash_rule(tmp_path, folders):
    """Many datasets ship train/ and test/ only: validation comes out of train/."""
    root = tmp_path / "data"
    for index, folder in enumerate(folders):
        write_class_folders(str(root / folder), {"cat": 20, "dog": 20}, seed=index)
    result = split_dataset(str(root), CONFIG)
    by_folder = {folder: {r for r in result.rows if f"/{folder}/" in r.uri} for folder in folders}
    test_fraction = 0.0 if "test" in folders else CONFIG.test_fraction
    assert {row.split for row in by_folder.get("test", [])} <= {"test"}
    for row in by_folder["train"]:
        assert row.split == assign_split(
            row.sha256, CONFIG.seed, CONFIG.val_fraction, test_fraction
        )
    assert {row.split for row in by_folder["train"]} == {"train", "validation"} | (
        set() if "test" in folders else {"test"}
    )


def test_a_class_with_no_train_images_is_an_error_naming_it(tmp_path):
    root = tmp_path / "data"
    write_class_folders(str(root / "train"), {"cat": 12, "dog": 12})
    write_class_folders(str(root / "test"), {"cat": 6, "dogs": 6}, seed=1)
    with pytest.raises(UserError) as raised:
        split_dataset(str(root), CONFIG)
    assert str(raised.value) == (
        "no train images of class 'dogs' (6 in test): a model cannot learn it; add "
        "train/dogs/, or name the class alike in every split folder"
    )
    with pytest.raises(UserError) as listed:  # from the listing, before any image is read
        precheck(str(root), CONFIG)
    assert str(listed.value) == str(raised.value)


def test_a_split_folder_without_a_valid_image_says_to_fill_it(tmp_path):
    root = tmp_path / "data"
    write_class_folders(str(root / "train"), {"cat": 12, "dog": 12})
    for label in ("cat", "dog"):
        (root / "test" / label).mkdir(parents=True)
        (root / "test" / label / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError) as raised:
        split_dataset(str(root), CONFIG)
    assert str(raised.value) == (
        f"the test split of {root} would be empty: add valid images to its test folder"
    )


def test_csv_source_resolves_relative_paths_and_refuses_escapes(tmp_path):
    root = str(tmp_path / "data")
    uris = write_class_folders(root, {"cat": 6, "dog": 6})
    outside = tmp_path / "outside.png"
    outside.write_bytes(encode(class_image(2, 5)))
    lines = ["uri,label"] + [f"{os.path.relpath(u, root)},{u.split('/')[-2]}" for u in uris[1:]]
    lines += [f"{uris[0]},cat", "../outside.png,dog", "only-a-uri.png", ""]
    storage.write_text(storage.join(root, "labels.csv"), "\n".join(lines))
    config = SplitConfig(val_fraction=0.2, test_fraction=0.2, seed=3, min_images_per_class=5)
    result = split_dataset(storage.join(root, "labels.csv"), config)
    assert sorted(r.uri for r in result.rows) == sorted(uris)
    assert [(s["uri"].rsplit("/", 1)[-1], s["reason"]) for s in result.stats["skipped"]] == [
        ("labels.csv:14", "path_escape"),
        ("labels.csv:15", "bad_csv_row"),
    ]


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda _: None, "does not exist"),
        (lambda root: os.makedirs(root), "is empty"),
        (lambda root: write_class_folders(root, {"only": 12}), "only one class \\('only'\\)"),
        (lambda root: write_class_folders(root, {"a": 12, "b": 3}), "'b' has 3, below"),
        (lambda root: [storage.write_bytes(f"{root}/{c}/x.png", b"") for c in "ab"],
         "no valid images in .* \\(2 zero_bytes\\)"),
    ],
)  # fmt: skip
def test_unusable_sources_are_one_clear_error(tmp_path, make, message):
    root = str(tmp_path / "data")
    make(root)
    with pytest.raises(UserError, match=message):
        split_dataset(root, CONFIG)


def test_a_class_whose_files_are_all_skipped_is_an_error_not_a_missing_class(tmp_path):
    root = tmp_path / "data"
    write_class_folders(str(root), {"cat": 12, "dog": 12})
    heic = (Path(__file__).parents[1] / "data" / "iphone.heic").read_bytes()
    (root / "café").mkdir()
    for i in range(12):  # an iPhone folder: every photo HEIF
        (root / "café" / f"IMG_{i:04d}.HEIC").write_bytes(heic + bytes([i]))
    with pytest.raises(UserError) as raised:
        split_dataset(str(root), CONFIG)
    assert str(raised.value) == (
        "too few valid images: 'café' has 0 of 12 files (12 unsupported_format skipped), "
        "below --min-images-per-class 5; e.g. café/IMG_0000.HEIC: HEIF is not supported "
        "(iPhone photos: convert them to JPEG, or set Camera > Formats > Most Compatible); "
        "add images or lower the minimum"
    )
    for i in range(4, 12):  # 4 photos converted to JPEG: still too few, and what is left
        (root / "café" / f"IMG_{i:04d}.HEIC").unlink()
    write_class_folders(str(tmp_path / "more"), {"café": 4}, seed=9)
    for path in (tmp_path / "more" / "café").iterdir():
        path.rename(root / "café" / path.name)
    with pytest.raises(UserError, match="'café' has 4 of 8 files \\(4 unsupported_format "):
        split_dataset(str(root), CONFIG)


def test_the_skipped_line_names_the_reasons_and_one_file_of_the_most_common(tmp_path):
    root = tmp_path / "data"
    write_class_folders(str(root), {"cat": 12, "dog": 12})
    heic = (Path(__file__).parents[1] / "data" / "iphone.heic").read_bytes()
    for i in range(3):  # a few iPhone photos among the others
        (root / "dog" / f"IMG_{i:04d}.HEIC").write_bytes(heic + bytes([i]))
    (root / "cat" / "empty.jpg").write_bytes(b"")
    stats = split_dataset(str(root), CONFIG).stats
    assert skipped_line(stats, "out/stats.json") == (
        "skipped 4 files (3 unsupported_format, 1 zero_bytes; e.g. dog/IMG_0000.HEIC: HEIF is "
        "not supported (iPhone photos: convert them to JPEG, or set Camera > Formats > Most "
        "Compatible)): see out/stats.json"
    )
    assert skipped_line({"source": str(root), "skipped": []}, "x") == ""


def test_a_class_whose_files_are_all_excluded_is_dropped_as_asked(tmp_path):
    root = tmp_path / "data"
    uris = write_class_folders(str(root), {"cat": 12, "dog": 12, "fox": 12})
    (tmp_path / "exclude.txt").write_text("\n".join(u for u in uris if "/fox/" in u))
    config = dataclasses.replace(CONFIG, exclude=str(tmp_path / "exclude.txt"))
    result = split_dataset(str(root), config)
    assert result.labels == ["cat", "dog"]
    assert result.stats["skipped_by_reason"] == {"excluded": 12}


def test_unreadable_csv_is_a_clear_error(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="CSV .*bad.csv is not UTF-8 "):
        split_dataset(str(tmp_path / "bad.csv"), CONFIG)
    excel = tmp_path / "excel.csv"  # Excel's plain "CSV" on Windows is cp1252
    excel.write_bytes("uri,label\ncaf\u00e9/1.jpg,caf\u00e9\n".encode("cp1252"))
    for source, exclude, what in ((excel, "", "CSV"), (tmp_path, excel, "--exclude")):
        with pytest.raises(UserError) as raised:
            split_dataset(str(source), dataclasses.replace(CONFIG, exclude=str(exclude)))
        assert str(raised.value) == (
            f"{what} {excel} is not UTF-8 (byte 0xe9 at offset 13): save it as UTF-8 (in "
            "Excel: Save As > CSV UTF-8)"
        )
    with pytest.raises(UserError, match="missing.csv: not found"):
        split_dataset(str(tmp_path / "missing.csv"), CONFIG)


def test_impossible_fractions_are_refused():
    with pytest.raises(UserError, match="--val-fraction \\+ --test-fraction must be < 1"):
        SplitConfig(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(UserError, match="--test-fraction must be in"):
        SplitConfig(test_fraction=-0.1)


def test_source_fingerprint_changes_only_with_the_files(tmp_path):
    from kftransfer.components.core.sources import fingerprint

    root = str(tmp_path / "data")
    write_class_folders(root, {"cat": 3, "dog": 3})
    first = fingerprint(root)
    assert fingerprint(root) == first
    write_class_folders(root, {"cat": 1}, start=10)  # a new image
    grown = fingerprint(root)
    assert grown != first
    os.utime(os.path.join(root, "cat", "img_0000.png"), ns=(1, 1))  # a replaced file
    assert fingerprint(root) not in (first, grown)


def test_an_exclusion_list_leaves_images_out_and_says_so(tmp_path):
    data = str(tmp_path / "data")
    write_class_folders(data, {"red": 30, "blue": 30})
    everything = split_dataset(data, SplitConfig())
    dropped = sorted(row.uri for row in everything.rows)[:3]
    listing = tmp_path / "drop.txt"
    listing.write_text("# mislabelled, checked by hand\n" + "\n".join(dropped) + "\n\n")
    as_csv = tmp_path / "label_issues.csv"
    as_csv.write_text(
        "uri,given,suggested,score\n" + "".join(f"{u},red,blue,0.1\n" for u in dropped)
    )
    for exclusions in (listing, as_csv):
        result = split_dataset(data, SplitConfig(exclude=str(exclusions)))
        assert sorted(r.uri for r in result.rows) == sorted(
            r.uri for r in everything.rows if r.uri not in dropped
        )
        excluded = [s for s in result.stats["skipped"] if s["reason"] == "excluded"]
        assert sorted(s["uri"] for s in excluded) == dropped
        assert excluded[0]["detail"] == f"listed in {exclusions}"
    with pytest.raises(UserError, match=r"nope.txt: not found \(--exclude names a file"):
        split_dataset(data, SplitConfig(exclude=str(tmp_path / "nope.txt")))


@pytest.mark.parametrize(
    "delimiter,encoding,newline,quote",
    [(",", "utf-8-sig", "\r\n", ""), (";", "utf-8-sig", "\r\n", ""), ("\t", "utf-8", "\n", ""),
     (";", "utf-8", "\n", '"'), ("\t", "utf-8", "\n", '"'), (",", "utf-8", "\n", '"')],
)  # fmt: skip
def test_csvs_saved_by_a_spreadsheet_are_read_as_written(
    tmp_path, delimiter, encoding, newline, quote
):
    """Excel's "CSV UTF-8" starts with a byte-order mark; some locales separate with `;`.

    R's `write.csv2` and `write.table(sep="\\t")` quote every field, the header's too
    (before: a quoted `"uri";"label"` header was not seen, and the error said to add it).
    """
    root = str(tmp_path / "data")
    uris = write_class_folders(root, {"café": 6, "dog": 6})
    q = quote
    lines = [f"{q}uri{q}{delimiter}{q}label{q}"]
    lines += [f"{q}{os.path.relpath(u, root)}{q}{delimiter}{q}{u.split('/')[-2]}{q}" for u in uris]
    csv_path = tmp_path / "data" / "labels.csv"
    csv_path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    result = split_dataset(str(csv_path), CONFIG)
    assert result.labels == ["café", "dog"]
    assert sorted((r.uri, r.label) for r in result.rows) == sorted(
        (u, u.split("/")[-2]) for u in uris
    )
    assert result.stats["skipped"] == []


def test_a_semicolon_csv_without_header_says_how_to_read_it(tmp_path):
    uris = write_class_folders(str(tmp_path), {"cat": 6, "dog": 6})
    (tmp_path / "labels.csv").write_text("".join(f"{u};{u.split('/')[-2]}\n" for u in uris))
    with pytest.raises(UserError) as raised:
        split_dataset(str(tmp_path / "labels.csv"), CONFIG)
    assert str(raised.value) == (
        f"CSV {tmp_path / 'labels.csv'} has no usable `uri,label` row, e.g. `cats/1.jpg,cat`; "
        "its rows look semicolon-separated: start it with the header line `uri;label`"
    )


def test_exclusion_lists_from_a_spreadsheet_and_ones_that_match_nothing(tmp_path):
    data = str(tmp_path / "data")
    write_class_folders(data, {"red": 30, "blue": 30})
    dropped = sorted(row.uri for row in split_dataset(data, SplitConfig()).rows)[:3]
    edited = tmp_path / "label_issues.csv"  # opened in Excel (German locale), rows deleted
    edited.write_bytes(
        "\r\n".join(["URI;given;suggested;score", *(f"{u};red;blue;0,1" for u in dropped)])
        .encode("utf-8-sig")
    )  # fmt: skip
    result = split_dataset(data, SplitConfig(exclude=str(edited)))
    assert sorted(s["uri"] for s in result.stats["skipped"] if s["reason"] == "excluded") == dropped
    assert result.stats["warnings"] == []
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("".join(f"/mnt/copy/{os.path.basename(u)}\n" for u in dropped))
    result = split_dataset(data, SplitConfig(exclude=str(elsewhere)))
    assert not [s for s in result.stats["skipped"] if s["reason"] == "excluded"]
    assert result.stats["warnings"] == [
        f"3 of the 3 images listed in {elsewhere} are not files of {data}, e.g. "
        f"/mnt/copy/{os.path.basename(dropped[0])}: list them as the split does "
        "(train.csv's uri)"
    ]


def test_class_names_that_look_alike_are_a_warning(tmp_path):
    """Hand-made labels drift: `Golden Retriever` and `golden_retriever` are two classes."""
    root = str(tmp_path / "data")
    write_class_folders(
        root, {"Golden Retriever": 8, "golden_retriever": 8, "pug": 8, "\uff30\uff35\uff27": 8}
    )
    result = split_dataset(root, CONFIG)
    assert result.labels == ["Golden Retriever", "golden_retriever", "pug", "\uff30\uff35\uff27"]
    assert [w for w in result.stats["warnings"] if w.startswith("classes")] == [
        "classes 'Golden Retriever', 'golden_retriever' differ only in case, width, spaces, '_' "
        "or '-': if they are one class, give them one name",
        "classes 'pug', '\uff30\uff35\uff27' differ only in case, width, spaces, '_' or '-': "
        "if they are one class, give them one name",
    ]


def test_class_folders_that_are_symbolic_links_are_read_and_a_cycle_once(tmp_path):
    """`ln -s /data/raw/cats cats` is how many build a dataset; os.walk alone skips it."""
    raw, data = tmp_path / "raw", tmp_path / "data"
    write_class_folders(str(raw), {"cat": 8, "dog": 8, "pug": 8})
    data.mkdir()
    (raw / "dog").rename(data / "dog")
    (data / "cat").symlink_to(raw / "cat", target_is_directory=True)
    (data / "pug").symlink_to("../raw/pug", target_is_directory=True)
    (data / "dog" / "again").symlink_to("..", target_is_directory=True)  # a cycle
    result = split_dataset(str(data), CONFIG)
    assert result.labels == ["cat", "dog", "pug"]
    assert {label: sum(c.values()) for label, c in result.stats["counts"].items()} == {
        "cat": 8,
        "dog": 8,
        "pug": 8,
    }
    assert {row.uri for row in result.rows if row.label == "cat"} == {
        str(data / "cat" / name) for name in os.listdir(raw / "cat")
    }


def test_names_that_are_not_utf8_are_skipped_and_named_not_a_crash(tmp_path):
    """A Latin-1 `café/` from an old zip: Python lists it with surrogates, no file takes."""
    root = tmp_path / "data"
    write_class_folders(str(root), {"cat": 8, "dog": 8})
    os.rename(root / "dog" / "img_0000.png", os.fsdecode(bytes(root) + b"/dog/\xe9t\xe9.png"))
    result = split_dataset(str(root), CONFIG)
    [skipped] = result.stats["skipped"]
    assert skipped == {
        "uri": f"{root}/dog/\ufffdt\ufffd.png",
        "reason": "bad_file_name",
        "detail": "its name is not UTF-8 (from an archive made on Windows?): rename it, e.g. "
        "convmv -f cp1252 -t utf-8 -r --notest FOLDER",
    }
    write_split(result, str(tmp_path / "split"))  # no surrogate reaches a file
    assert len(fingerprint(str(root))) == 64  # the pipeline's first step lists it too
    os.rename(root / "cat", os.fsdecode(bytes(root) + b"/caf\xe9"))
    with pytest.raises(UserError) as raised:
        split_dataset(str(root), CONFIG)
    assert str(raised.value).startswith(
        "too few valid images: 'caf\ufffd' has 0 of 8 files (8 bad_file_name skipped), below "
    )


def test_class_names_spelled_in_nfc_and_nfd_are_one_class(tmp_path):
    """A Mac writes `café` as `e` + combining accent (NFD), Linux as one `é` (NFC): a
    bucket filled from both has two folders that look the same and are one class."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    root = str(tmp_path / "data")
    write_class_folders(root, {composed: 8, decomposed: 8, "pug": 8})
    rows_csv = tmp_path / "rows.csv"
    rows_csv.write_text(
        "".join(
            f"data/{label}/{name},{label}\n"
            for label in (decomposed, "pug")
            for name in os.listdir(os.path.join(root, label))
        ),
        encoding="utf-8",
    )
    result = split_dataset(root, CONFIG)
    assert result.labels == [composed, "pug"]
    assert sum(result.stats["counts"][composed].values()) == 16
    assert result.stats["warnings"] == [
        "class 'caf\u00e9' is spelled 2 ways in the source, composed (NFC) and decomposed "
        "(NFD, as macOS writes accents): they are taken as one class"
    ]
    assert split_dataset(str(rows_csv), CONFIG).labels == [composed, "pug"]
    assert same_classes([decomposed, "pug"], [composed, "pug"])  # a model exported before
    assert not same_classes(["pug", decomposed], [composed, "pug"])
