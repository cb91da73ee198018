"""Bottleneck feature extraction: images through a frozen backbone, into shards, once.

`extract_features` streams every image of a split folder through the backbone in
batches and writes feature shards plus `manifest.json` (see `shards`). Rows already
in the content-keyed feature cache (`chunk_store`) are copied instead of recomputed. Memory
holds one batch, one shard and one cache chunk at a time, whatever the dataset size.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from kftransfer.components.core import layout
from kftransfer.components.core.backbones import Backbone, load_backbone
from kftransfer.components.core.chunk_store import ChunkStore, feature_store, pixel_store
from kftransfer.components.core.config import ExtractConfig
from kftransfer.components.core.images import DECODE_VERSION, image_dataset
from kftransfer.components.core.layers import Preprocess, pooling_layer
from kftransfer.components.core.layout import SPLITS, FeatureSpec, Row, read_labels, read_rows
from kftransfer.components.core.progress import LOGGER, Progress
from kftransfer.components.core.shards import ShardWriter, rows_per_shard
from kftransfer.components.core.signals import sigterm_deferred

MANIFEST_FORMAT = 1


def feature_extractor(backbone: Backbone, pooling: str) -> keras.Model:
    """Raw uint8 images `[B, S, S, 3]` -> feature vectors, the backbone frozen in inference mode."""
    size = backbone.image_size
    images = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = Preprocess(backbone.preprocessing, name="preprocess")(images)
    backbone.base.trainable = False
    x = backbone.base(x, training=False)
    if len(x.shape) == 4:
        x = pooling_layer(pooling)(x)
    return keras.Model(images, x, name="feature_extractor")


def build_backbone(config: ExtractConfig) -> Backbone:
    """The configured backbone (random weights are seeded, so they are reproducible)."""
    if config.weights == "none":
        keras.utils.set_random_seed(0)
    return load_backbone(
        config.backbone,
        config.weights,
        config.image_size,
        config.feature_layer,
        config.preprocessing,
    )


def predict_function(extractor: keras.Model) -> Callable:
    """The extractor as one traced graph for any batch size (the last batch is smaller)."""
    signature = [tf.TensorSpec([None, *extractor.input_shape[1:]], tf.uint8)]
    return tf.function(lambda images: extractor(images, training=False), input_signature=signature)


@dataclass
class _Job:
    """One extraction: the model, where rows go, and what has been done so far."""

    extractor: keras.Model
    config: ExtractConfig
    label_ids: dict[str, int]
    cache: ChunkStore | None
    writers: dict[str, ShardWriter]
    pixels: ChunkStore | None = None
    summary: dict[str, dict] = field(default_factory=dict)


def extract_features(
    splits_uri: str,
    out_uri: str,
    config: ExtractConfig,
    cache_uri: str = "",
    part: tuple[int, int] = (0, 1),
) -> dict:
    """Extracts features of every split into `out_uri`; returns the manifest.

    Rows found in the cache are copied; all others go through the backbone in one
    stream (every split together, so the input pipeline starts once).

    Args:
        splits_uri: a split folder (see `split.write_split`).
        out_uri: the features folder to write (local or gs://).
        config: the backbone setup.
        cache_uri: feature cache root (local or gs://); empty for none.
        part: `(index, count)`: extract only rows `i` with `i % count == index` (one of
            `count` parallel extraction pods).
    """
    start = time.perf_counter()
    backbone = build_backbone(config)
    extractor = feature_extractor(backbone, config.pooling)
    dim = int(extractor.output_shape[-1])
    spec = feature_spec(backbone, config)
    labels = read_labels(splits_uri)
    rows_per = rows_per_shard(dim, config.feature_dtype)
    job = _Job(
        extractor,
        config,
        {label: i for i, label in enumerate(labels)},
        feature_store(cache_uri, spec, dim) if cache_uri else None,
        {s: ShardWriter(out_uri, s, rows_per, config.feature_dtype) for s in SPLITS},
        pixel_store(cache_uri, backbone.image_size) if cache_uri else None,
    )
    LOGGER.info(
        "extract: %s (%s) at %d px, %s pooling -> %d features (%s); part %d of %d",
        *(backbone.name, config.weights, backbone.image_size, config.pooling, dim),
        *(config.feature_dtype, part[0] + 1, part[1]),
    )
    rows = {split: read_rows(splits_uri, split)[part[0] :: part[1]] for split in SPLITS}
    rate = _compute_and_keep(job, _copy_cached(job, rows))
    for split, writer in job.writers.items():
        job.summary[split]["shards"] = writer.close()
    manifest = {
        "format": MANIFEST_FORMAT,
        **spec.to_json(),
        "weights": config.weights,
        "dim": dim,
        "labels": labels,
        "part": {"index": part[0], "count": part[1]},
        "splits": job.summary,
        "images_per_second": round(rate, 1),
        "seconds": round(time.perf_counter() - start, 2),
    }
    layout.write_manifest(out_uri, manifest)
    return manifest


def feature_spec(backbone: Backbone, config: ExtractConfig) -> FeatureSpec:
    """What identifies the rows this backbone and config compute."""
    return FeatureSpec(
        backbone=backbone.name,
        weights_fingerprint=backbone.fingerprint,
        image_size=backbone.image_size,
        pooling=config.pooling,
        preprocessing=backbone.preprocessing,
        feature_layer=config.feature_layer,
        dtype=config.feature_dtype,
        decode=DECODE_VERSION,
    )


def extract_config(manifest: dict) -> ExtractConfig:
    """The ExtractConfig that rebuilds the backbone a features folder came from."""
    spec = FeatureSpec.from_manifest(manifest)
    return ExtractConfig(
        backbone=spec.backbone,
        weights=manifest["weights"],
        image_size=spec.image_size,
        pooling=spec.pooling,
        feature_layer=spec.feature_layer,
        preprocessing=spec.preprocessing,
        feature_dtype=spec.dtype,
    )


def _copy_cached(job: _Job, rows: dict[str, list[Row]]) -> list[tuple[str, Row]]:
    """Writes the rows found in the cache to their split's shards; returns the others.

    One lookup and one read of each chunk for all splits: a chunk holds rows of every
    split (before, each split looked up and read the chunks again: three times).
    """
    by_sha = {row.sha256: row for split_rows in rows.values() for row in split_rows}
    hits = job.cache.lookup(set(by_sha)) if job.cache else {}
    for sha, features in job.cache.read_rows(hits) if hits else ():
        splits = np.array([by_sha[s].split for s in sha])
        for split in np.unique(splits):
            mine = splits == split
            label_ids = np.array([job.label_ids[by_sha[s].label] for s in sha[mine]])
            job.writers[split].add(features[mine], label_ids, sha[mine])
    for split, split_rows in rows.items():
        reused = sum(row.sha256 in hits for row in split_rows)
        job.summary[split] = {"rows": len(split_rows), "reused": reused, "extracted": 0,
                              "skipped": []}  # fmt: skip
    return [(split, row) for split, rs in rows.items() for row in rs if row.sha256 not in hits]


def _compute_and_keep(job: _Job, todo: list[tuple[str, Row]]) -> float:
    """`_compute`, the caches' queued rows written (also when stopped), chunks merged.

    Once the rows are computed, the caches' part-filled chunks are merged
    (`ChunkStore.compact`).

    Stopped by a stopped pod (SIGTERM), Ctrl-C or an error, the rows computed so far are
    still written to the caches, so a retry computes only the rest. On a cluster the step
    is killed about a second after SIGTERM (docs/kfp-backend.md), so there what counts is
    what the caches already wrote (`chunk_store.FLUSH_SECONDS`).
    """
    with sigterm_deferred() as stop_if_terminated:
        try:
            seconds = _compute(job, todo, stop_if_terminated)
        finally:
            for store in (job.cache, job.pixels):
                if store:
                    store.flush()
    for store in (job.cache, job.pixels):
        if store:
            store.compact()  # once done: a stopped step leaves it to the next run
    return seconds


def _compute(
    job: _Job, todo: list[tuple[str, Row]], stop_if_terminated: Callable[[], None]
) -> float:
    """Runs the backbone over the `(split, row)` pairs of `todo`; returns images/s.

    `stop_if_terminated` is called after each batch (see `signals.sigterm_deferred`).

    The rate is the steady one, after the first batch (which also traces the model and
    fills the input pipeline); the manifest's `seconds` has the whole wall time.
    """
    if not todo:
        LOGGER.info("extract: every row reused from the cache")
        return 0.0
    dataset = image_dataset(
        [row.uri for _, row in todo],
        [job.label_ids[row.label] for _, row in todo],
        job.extractor.input_shape[1],
        job.config.batch_size,
        sha256s=[row.sha256 for _, row in todo],  # caches keyed by it: never another's
    )
    splits = np.array([split for split, _ in todo])
    sha = np.array([row.sha256 for _, row in todo])
    predict = predict_function(job.extractor)
    progress = Progress("extract", total=len(todo), unit="images")
    done = np.zeros(len(todo), dtype=bool)
    for images, labels, indices in dataset:
        features = predict(images).numpy().astype(job.config.feature_dtype)
        index, labels = indices.numpy(), labels.numpy()
        for split in np.unique(splits[index]):
            mine = splits[index] == split
            job.writers[split].add(features[mine], labels[mine], sha[index[mine]])
        if job.cache:
            job.cache.add(sha[index], features)
        if job.pixels:  # decoded anyway: fine-tuning and evaluation reuse them
            job.pixels.add(sha[index], images.numpy())
        done[index] = True
        progress.update(len(index))
        stop_if_terminated()
    for (split, row), ok in zip(todo, done, strict=True):
        if ok:
            job.summary[split]["extracted"] += 1
        else:
            LOGGER.warning(
                "extract %s: skipped %s (no longer readable, decodable, or as the split hashed it)",
                *(split, row.uri),
            )
            job.summary[split]["skipped"].append(row.uri)
            job.summary[split]["rows"] -= 1
    progress.finish()
    return progress.steady_rate
