"""Near-duplicate images across splits, by exact cosine similarity of their features (NumPy).

The same photo resized, re-encoded as JPEG or slightly cropped has a different sha256,
so exact-hash deduplication misses it, yet a test image that is a copy of a train image
inflates the test accuracy. Backbone features of such copies stay nearly parallel: their
cosine similarity is close to 1, while different photos, even of the same class, sit
lower. The search is exact (no approximate index): rows are L2-normalised and multiplied
block by block in float32, so memory stays at `block x block` similarities whatever the
sizes (3,000 test rows against 30,000 train rows of 1,024 features: about 1 s on 2 CPUs).
"""

from typing import NamedTuple

import numpy as np

BLOCK = 2048  # rows per block: 2048 x 2048 float32 similarities are 16 MiB


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); an all-zero row stays zero (similar to nothing)."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"need a [rows, dim] matrix, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class NearDuplicates(NamedTuple):
    """What a near-duplicate search found.

    Attributes:
        count: every pair at or above the threshold.
        twinned: `[N]` bools: which queries have at least one.
        pairs: the first pairs as `(query, reference, similarity)`, by query index, a
            query's nearest first (ties by reference index); all of them, or `limit`.
    """

    count: int
    twinned: np.ndarray
    pairs: list[tuple[int, int, float]]


def near_duplicate_search(
    queries: np.ndarray,
    references: np.ndarray,
    threshold: float,
    limit: int | None = None,
    block: int = BLOCK,
    exclude_self: bool = False,
) -> NearDuplicates:
    """Counts every (query, reference) pair whose cosine similarity is at least `threshold`.

    Memory stays at a block of similarities however many pairs there are: pairs are
    counted block by block, and only the first `limit` are listed, from the few query
    rows that hold them (a class of 4,000 near-identical photos has 8 million pairs).

    Args:
        queries: `[N, dim]` feature vectors, e.g. of the test split.
        references: `[M, dim]` feature vectors, e.g. of the train split; for a search
            within one set pass the same array as `queries` with `exclude_self=True`.
        threshold: the smallest cosine similarity counted, in [-1, 1].
        limit: the most pairs listed (None: all of them).
        block: rows of queries and of references multiplied at once.
        exclude_self: `queries` and `references` are the same set: count each pair
            `(i, j)` once, with `i < j`, and no row paired with itself.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if exclude_self and np.shape(queries) != np.shape(references):
        raise ValueError("exclude_self needs queries and references to be the same set")
    unit_queries = _unit_rows(queries)
    unit_references = unit_queries if exclude_self else _unit_rows(references)
    per_query = np.zeros(len(unit_queries), np.int64)
    for q in range(0, len(unit_queries), block):
        for hits in _hit_blocks(unit_queries, unit_references, q, block, threshold, exclude_self):
            per_query[q : q + len(hits)] += hits.sum(axis=1)
    count = int(per_query.sum())
    wanted = count if limit is None else min(limit, count)
    twinned_rows = np.flatnonzero(per_query)
    listed = int(np.searchsorted(np.cumsum(per_query[twinned_rows]), wanted)) + 1 if wanted else 0
    listed_rows = twinned_rows[:listed]
    pairs = _pairs_of(unit_queries, unit_references, listed_rows, threshold, exclude_self, block)
    return NearDuplicates(count, per_query > 0, pairs[:wanted])


def _hit_blocks(unit_queries, unit_references, q, block, threshold, exclude_self):
    """The `similarity >= threshold` blocks of query rows `q:q+block`, one per references block."""
    # within one set, blocks strictly below the diagonal hold no pair with i < j
    first_reference = q if exclude_self else 0
    for r in range(first_reference, len(unit_references), block):
        hits = unit_queries[q : q + block] @ unit_references[r : r + block].T >= threshold
        if exclude_self and r == q:
            hits &= np.arange(hits.shape[1])[None, :] > np.arange(hits.shape[0])[:, None]
        yield hits


def _pairs_of(unit_queries, unit_references, rows, threshold, exclude_self, block):
    """Every pair of the query `rows`, by query, nearest first (ties by reference index)."""
    found = []
    for start in range(0, len(rows), block):
        chosen = rows[start : start + block]
        for r in range(0, len(unit_references), block):
            similarity = unit_queries[chosen] @ unit_references[r : r + block].T
            at, columns = np.nonzero(similarity >= threshold)
            queries, references = chosen[at], columns + r
            keep = references > queries if exclude_self else np.ones(len(at), bool)
            found.append((queries[keep], references[keep], similarity[at, columns][keep]))
    if not found:
        return []
    queries, references, similarities = (np.concatenate(c) for c in zip(*found, strict=True))
    order = np.lexsort((references, -similarities, queries))
    return [
        (int(i), int(j), float(s))
        for i, j, s in zip(queries[order], references[order], similarities[order], strict=True)
    ]


def near_duplicate_pairs(
    queries: np.ndarray,
    references: np.ndarray,
    threshold: float,
    block: int = BLOCK,
    exclude_self: bool = False,
) -> list[tuple[int, int, float]]:
    """Every pair of `near_duplicate_search`, as `(query, reference, similarity)` tuples.

    Memory grows with the pairs found, so keep `threshold` near 1, or use the search's
    count and `limit`.
    """
    return near_duplicate_search(queries, references, threshold, None, block, exclude_self).pairs
