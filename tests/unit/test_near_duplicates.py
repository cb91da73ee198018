"""Exact cosine near-duplicate search: planted copies found, nothing else, in bounded memory."""

import tracemalloc

import numpy as np
import pytest

from kftransfer.components.core import trust
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.near_duplicates import near_duplicate_pairs, near_duplicate_search


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


@pytest.mark.parametrize("exclude_self", [False, True])
def test_the_search_counts_every_pair_and_lists_the_first_as_the_full_list_orders_them(
    exclude_self,
):
    queries, references, _ = planted(n_queries=400, n_references=400)
    references = queries.copy() if exclude_self else references
    queries[100:140] = queries[100]  # a cluster: many pairs per row
    references = queries if exclude_self else references
    every = near_duplicate_pairs(queries, references, 0.95, block=64, exclude_self=exclude_self)
    for limit in (0, 1, 7, 50, len(every), len(every) + 10):
        found = near_duplicate_search(queries, references, 0.95, limit, 64, exclude_self)
        assert found.count == len(every)
        assert [pair[:2] for pair in found.pairs] == [pair[:2] for pair in every[:limit]]
        np.testing.assert_allclose(
            [p[2] for p in found.pairs], [p[2] for p in every[:limit]], atol=1e-6
        )
        assert set(np.flatnonzero(found.twinned)) == {i for i, _, _ in every}


def test_a_class_of_near_identical_photos_is_counted_in_bounded_memory():
    """Before: every pair became a Python tuple, then cross-class pairs were dropped: 3,000
    near-identical photos (bursts, product shots) are 4.5 million pairs, ~1 GB."""
    rng = np.random.default_rng(0)
    burst = np.repeat(rng.normal(size=(1, 32)), 3000, axis=0) + 1e-4 * rng.normal(size=(3000, 32))
    train = trust.KeyedFeatures(burst.astype(np.float16), np.zeros(3000, int),
                                np.array([f"{i:064x}" for i in range(3000)]),
                                [f"/d/{i}.jpg" for i in range(3000)])  # fmt: skip
    test = trust.KeyedFeatures(burst[:2].astype(np.float16), np.zeros(2, int),
                               np.array(["a" * 64, "b" * 64]), ["/t/a", "/t/b"])  # fmt: skip
    tracemalloc.start()
    found = trust.find_near_duplicates(train, test, EvalConfig())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found["within_class_count"] == 3000 * 2999 // 2
    assert len(found["within_class"]) == trust.LISTED_PAIRS
    assert found["leaked_count"] == 2 and len(found["leaked"]) == trust.LISTED_PAIRS
    assert peak < 120 * 2**20, f"{peak / 2**20:.0f} MiB"
