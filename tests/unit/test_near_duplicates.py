"""Exact cosine near-duplicate search: planted copies found, nothing else, in bounded memory."""

import tracemalloc

import numpy as np
import pytest

from kftransfer.components.core.near_duplicates import near_duplicate_pairs


def planted(n_queries=300, n_references=500, dim=64, seed=0):
    """Random references; queries 0, 5, 10, ... are noisy, rescaled copies of references."""
    rng = np.random.default_rng(seed)
    references = rng.normal(size=(n_references, dim)).astype(np.float32)
    queries = rng.normal(size=(n_queries, dim)).astype(np.float32)
    copied = {q: int(rng.integers(n_references)) for q in range(0, n_queries, 5)}
    for q, r in copied.items():
        # scaled (cosine ignores length) plus 5% noise: similarity ~0.999
        queries[q] = 3.0 * references[r] + 0.05 * rng.normal(size=dim)
    return queries, references, copied


def test_planted_copies_are_found_and_nothing_else():
    queries, references, copied = planted()
    pairs = near_duplicate_pairs(queries, references, threshold=0.95)
    assert {(i, j) for i, j, _ in pairs} == set(copied.items())
    assert all(0.95 <= s <= 1.0 + 1e-6 for _, _, s in pairs)
    # unrelated random vectors in 64 dims: cosine ~ N(0, 1/8); none is anywhere near
    assert near_duplicate_pairs(queries[1:5], references, threshold=0.7) == []


def test_similarity_is_the_cosine():
    queries = np.array([[1.0, 0.0], [0.0, 0.0]])
    references = np.array([[2.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    pairs = near_duplicate_pairs(queries, references, threshold=-1.0)
    # the zero row is similar to nothing (0 >= -1 still reports it: every pair at -1)
    assert [(i, j) for i, j, _ in pairs[:3]] == [(0, 0), (0, 1), (0, 2)]
    assert [s for _, _, s in pairs[:3]] == pytest.approx([1.0, np.sqrt(0.5), -1.0])
    assert [s for i, _, s in pairs if i == 1] == [0.0, 0.0, 0.0]


def test_nearest_reference_first_for_each_query():
    rng = np.random.default_rng(1)
    base = rng.normal(size=32)
    references = np.stack([base + 0.3 * rng.normal(size=32) for _ in range(4)] + [base])
    pairs = near_duplicate_pairs(base[None, :], references, threshold=0.5)
    assert pairs[0][1] == 4 and pairs[0][2] == pytest.approx(1.0)
    similarities = [s for _, _, s in pairs]
    assert similarities == sorted(similarities, reverse=True) and len(pairs) == 5


@pytest.mark.parametrize("block", [1, 7, 64, 5000])
def test_block_size_does_not_change_the_result(block):
    queries, references, _ = planted(seed=2)
    queries[1] = queries[0] * 0.5  # a query with two matches; a tie in the order
    expected = near_duplicate_pairs(queries, references, threshold=0.9, block=2048)
    got = near_duplicate_pairs(queries, references, threshold=0.9, block=block)
    assert [(i, j) for i, j, _ in got] == [(i, j) for i, j, _ in expected]
    np.testing.assert_allclose([s for *_, s in got], [s for *_, s in expected], atol=1e-6)


@pytest.mark.parametrize("block", [3, 16, 2048])
def test_within_one_set_each_pair_once_without_self_pairs(block):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 16)).astype(np.float32)
    vectors[25] = vectors[3] * 2  # 3 ~ 25
    vectors[31] = vectors[3] + 1e-3  # 3 ~ 31 and 25 ~ 31
    pairs = near_duplicate_pairs(vectors, vectors, threshold=0.99, block=block, exclude_self=True)
    assert [(i, j) for i, j, _ in pairs] == [(3, 25), (3, 31), (25, 31)]
    with pytest.raises(ValueError):
        near_duplicate_pairs(vectors, vectors[:10], threshold=0.9, exclude_self=True)


def test_memory_stays_bounded_by_the_block():
    # 6000 x 6000 similarities would be 144 MB of float32; blocks of 256 are 256 KB each
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(6000, 8)).astype(np.float32)
    tracemalloc.start()
    try:
        pairs = near_duplicate_pairs(vectors, vectors, threshold=0.9999, block=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"
    # without exclude_self every row is its own duplicate: the search did cover all blocks
    assert {(i, i) for i in range(6000)} <= {(i, j) for i, j, _ in pairs}
