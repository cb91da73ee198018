"""Training input from decoded pixels: every image decoded and resized once, then streamed.

Fine-tuning used to decode every training image again every epoch: with camera photos
that is most of an epoch on a CPU, and it starves a GPU. Instead `fill` decodes each image
once (`images.decode_resized`) into a pixel store (`chunk_store.pixel_store`): the
persistent one under `--cache-uri` (content-keyed, shared with extraction, which fills it
as a side effect, and with later runs), or a run's own temporary one. `dataset` then reads
the store's ~64 MB chunks in a new order each epoch, several in flight, and mixes their
rows in a bounded shuffle buffer: sequential reads at object-store speed, memory flat
however many images there are, and the very pixels a fresh decode gives.

Augmentations work on the stored size (flips, small shifts, rotations, zooms, contrast
within the frame), so nothing larger than the model's input is stored.
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from kftransfer.components.core.chunk_store import ChunkStore
from kftransfer.components.core.images import augmented_batches, image_dataset
from kftransfer.components.core.progress import LOGGER, Progress

SHUFFLE_ROWS = 512  # rows mixed across the chunks in flight (bounded memory)
READS_IN_FLIGHT = 3  # chunks read at once
FILL_BATCH = 32


def fill(store: ChunkStore, uris: list[str], sha256s: list[str], image_size: int) -> dict:
    """Decodes the images the store lacks into it; returns `{"decoded": n, "reused": n}`.

    Images that no longer decode, or whose content changed since the split hashed it,
    are left out (and logged); `dataset` skips them.
    """
    known = store.lookup(set(sha256s))
    missing = [i for i, sha in enumerate(sha256s) if sha not in known]
    decoded = 0
    if missing:
        progress = Progress("decode into the pixel cache", total=len(missing), unit="images")
        batches = image_dataset(
            [uris[i] for i in missing],
            [0] * len(missing),
            image_size,
            FILL_BATCH,
            sha256s=[sha256s[i] for i in missing],
        )
        shas = np.array(sha256s)
        for images, _, indices in batches:
            store.add(shas[np.asarray(missing)[indices.numpy()]], images.numpy())
            progress.update(len(indices))
            decoded += len(indices)
        store.flush()
        store.compact()
        progress.finish()
    skipped = f", {len(missing) - decoded} skipped" if decoded < len(missing) else ""
    LOGGER.info("pixel cache: %d images decoded, %d reused%s", decoded, len(known), skipped)
    return {"decoded": decoded, "reused": len(known)}


def dataset(
    store: ChunkStore,
    sha256s: list[str],
    labels: list[int],
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    augment: Callable | None = None,
) -> tf.data.Dataset:
    """Batches of `(images uint8 [B, S, S, 3], labels int32 [B], row indices int32 [B])`.

    Rows the store lacks are dropped (their index never appears), as `image_dataset`
    drops files that no longer decode.

    Args:
        store: a filled pixel store.
        sha256s: the content hash of each row's image.
        labels: each row's class id.
        batch_size: rows per batch (the last batch may be smaller).
        shuffle_seed: a new order every epoch with this seed (chunks, then rows within a
            bounded buffer); None keeps the store's order.
        augment: applied to each float batch in training only (see `image_dataset`).
    """
    hits = store.lookup(set(sha256s))
    plan: dict[str, list[int]] = {}
    for row, sha in enumerate(sha256s):
        if sha in hits:
            plan.setdefault(hits[sha], []).append(row)
    chunk_ids = sorted(plan)
    rows_of = [np.array(plan[c], dtype=np.int32) for c in chunk_ids]
    label_array, sha_array = np.asarray(labels, np.int32), np.array(sha256s)

    def read(position):
        index = int(position)
        rows = rows_of[index]
        images = store.chunk_rows_of(chunk_ids[index], sha_array[rows].tolist())
        return images, label_array[rows], rows

    order = tf.data.Dataset.range(len(chunk_ids))
    if shuffle_seed is not None:
        order = order.shuffle(max(len(chunk_ids), 1), seed=shuffle_seed)
    chunks = order.map(
        lambda i: tf.numpy_function(read, [i], [tf.uint8, tf.int32, tf.int32]),
        num_parallel_calls=READS_IN_FLIGHT,
        deterministic=True,
    )
    size = store.spec["image_size"]
    shapes = ([None, size, size, 3], [None], [None])  # numpy_function's outputs have none
    rows = chunks.map(
        lambda *arrays: tuple(tf.ensure_shape(a, s) for a, s in zip(arrays, shapes, strict=True))
    ).unbatch()
    if shuffle_seed is not None:
        rows = rows.shuffle(SHUFFLE_ROWS, seed=shuffle_seed, reshuffle_each_iteration=True)
    return augmented_batches(rows, batch_size, augment)
