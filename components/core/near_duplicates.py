"""Near-duplicate images across splits, by exact cosine similarity of their features (NumPy).

The same photo resized, re-encoded as JPEG or slightly cropped has a different sha256,
so exact-hash deduplication misses it, yet a test image that is a copy of a train image
inflates the test accuracy. Backbone features of such copies stay nearly parallel: their
cosine similarity is close to 1, while different photos, even of the same class, sit
lower. The search is exact (no approximate index): rows are L2-normalised and multiplied
block by block in float32, so memory stays at `block x block` similarities whatever the
sizes (3,000 test rows against 30,000 train rows of 1,024 features: about 1 s on 2 CPUs).
"""

import numpy as np

BLOCK = 2048  # rows per block: 2048 x 2048 float32 similarities are 16 MiB


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); an all-zero row stays zero (similar to nothing)."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"need a [rows, dim] matrix, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _pairs_in_block(similarity, query_start, reference_start, threshold, upper_only):
    rows, columns = np.nonzero(similarity >= threshold)
    queries, references = rows + query_start, columns + reference_start
    if upper_only:  # within one set: each unordered pair once, never a row with itself
        keep = references > queries
        queries, references, rows, columns = (a[keep] for a in (queries, references, rows, columns))
    return queries, references, similarity[rows, columns]


def near_duplicate_pairs(
    queries: np.ndarray,
    references: np.ndarray,
    threshold: float,
    block: int = BLOCK,
    exclude_self: bool = False,
) -> list[tuple[int, int, float]]:
    """Every (query, reference) pair whose cosine similarity is at least `threshold`.

    Args:
        queries: `[N, dim]` feature vectors, e.g. of the test split.
        references: `[M, dim]` feature vectors, e.g. of the train split; for a search
            within one set pass the same array as `queries` with `exclude_self=True`.
        threshold: the smallest cosine similarity reported, in [-1, 1]. Memory grows with
            the pairs found, so keep it near 1 (a near-duplicate threshold).
        block: rows of queries and of references multiplied at once.
        exclude_self: `queries` and `references` are the same set: report each pair
            `(i, j)` once, with `i < j`, and no row paired with itself.

    Returns:
        `(query index, reference index, similarity)` tuples, by query index; a query's
        pairs nearest first (ties by reference index).
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if exclude_self and np.shape(queries) != np.shape(references):
        raise ValueError("exclude_self needs queries and references to be the same set")
    unit_queries, unit_references = _unit_rows(queries), _unit_rows(references)
    found = []
    for q in range(0, len(unit_queries), block):
        # within one set, blocks strictly below the diagonal hold no pair with i < j
        first_reference = (q // block) * block if exclude_self else 0
        for r in range(first_reference, len(unit_references), block):
            similarity = unit_queries[q : q + block] @ unit_references[r : r + block].T
            found.append(_pairs_in_block(similarity, q, r, threshold, exclude_self))
    if not found:
        return []
    queries_found, references_found, similarities = (
        np.concatenate(column) for column in zip(*found, strict=True)
    )
    order = np.lexsort((references_found, -similarities, queries_found))
    return [
        (int(i), int(j), float(s))
        for i, j, s in zip(
            queries_found[order], references_found[order], similarities[order], strict=True
        )
    ]
