"""The chunk stores of the caches stay few chunks however many runs added to them."""

import os

import numpy as np

from kftransfer.components.core import chunk_store, pixels
from kftransfer.components.core.chunk_store import COMPACT_AFTER, ChunkStore

ROW_BYTES = chunk_store.SHARD_BYTES // 16  # 16 rows fill a chunk


def store(tmp_path) -> ChunkStore:
    return ChunkStore(str(tmp_path / "store"), {"image_size": 2}, "images", ROW_BYTES)


def nightly(target: ChunkStore, night: int, rows: int = 3) -> list[str]:
    """One run's new rows: a part-filled chunk of `rows` 2x2x3 images."""
    shas = [f"{night:032x}{i:032x}" for i in range(rows)]
    images = np.full((rows, 2, 2, 3), night, np.uint8)
    target.add(np.array(shas), images)
    target.flush()
    return shas


def chunk_files(tmp_path) -> list[str]:
    return sorted(os.listdir(tmp_path / "store" / "chunks"))


def test_part_filled_chunks_are_merged_once_there_are_too_many(tmp_path):
    """Before: each run added a chunk for good, and every lookup read every `.keys` file:
    after a year of nightly runs, 365 lookups' worth of reads, and epochs read 2x the rows."""
    every = []
    for night in range(30):
        target = store(tmp_path)
        every += nightly(target, night)
        target.compact()
        assert len(chunk_files(tmp_path)) <= 2 * (COMPACT_AFTER + 1 + 90 // 16)
    target = store(tmp_path)
    hits = target.lookup(set(every))
    assert set(hits) == set(every)  # no row lost
    for shas, rows in target.read_rows(hits):
        assert [int(r[0, 0, 0]) for r in rows] == [int(s[:32], 16) for s in shas.tolist()]


def test_a_reader_whose_chunk_was_merged_away_still_gets_its_rows(tmp_path):
    target = store(tmp_path)
    shas = [sha for night in range(COMPACT_AFTER + 1) for sha in nightly(target, night)]
    planned = target.lookup(set(shas))  # a run's lookup, then another run compacts
    dataset = pixels.dataset(target, shas, list(range(len(shas))), 4)
    assert store(tmp_path).compact() == COMPACT_AFTER + 1
    assert not any(chunk in " ".join(chunk_files(tmp_path)) for chunk in set(planned.values()))
    read = {sha: int(rows[0, 0, 0, 0]) for sha_list, rows in target.read_rows(planned)
            for sha, rows in zip(sha_list.tolist(), rows[:, None], strict=True)}  # fmt: skip
    assert read == {sha: int(sha[:32], 16) for sha in shas}
    labels = np.concatenate([labels.numpy() for _, labels, _ in dataset])
    assert sorted(labels.tolist()) == list(range(len(shas)))


def test_below_the_limit_nothing_is_merged(tmp_path):
    target = store(tmp_path)
    for night in range(COMPACT_AFTER):
        nightly(target, night)
    assert target.compact() == 0
    assert len(chunk_files(tmp_path)) == 2 * COMPACT_AFTER
