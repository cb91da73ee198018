"""Bottleneck extraction benchmarks, each a ratio of two measurements made in one run.

1. extraction images/s (read + decode + resize + forward + shard writes, steady state:
   after the first batch, which traces the model)
   / the bare forward pass's images/s on in-memory tensors of the same shape (target
   >= 0.9), the bare pass timed both as the traced function extraction calls and as
   `model.predict`;
2. our decode pipeline images/s / `keras.utils.image_dataset_from_directory` images/s;
3. peak RSS extracting 4N images / N images, filling the caches too, each in a fresh
   process (target <= 1.2);
4. wall time of re-extraction after +10% new images with the cache (features and
   pixels) / the full extraction's wall time, both end to end, at N and at 5N images
   (target <= 0.2). Each run also builds and traces the model, about 1 s here whatever
   N, so the ratio falls toward 0.1 as N grows; 5N is measured once.

Timings on a shared VM swing by +-30%: each pair is measured `--repeats` times,
interleaved, and the best of each side is compared.

Usage: .venv/bin/python -m bench.extract [--images 2000] [--size 160] [--repeats 3]
"""

import argparse
import os
import tempfile

from bench.common import machine, peak_rss_of, print_ratios, timed
from devtools.imagegen import class_image, encode
from kftransfer.components.core.config import ExtractConfig, SplitConfig
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.split import split_dataset, write_split

CLASSES = 5


def write_jpegs(root: str, count: int, start: int = 0) -> None:
    """`count` distinct 200x160 JPEGs spread over CLASSES class folders."""

    def write(i: int) -> None:
        folder = os.path.join(root, f"class{i % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        image = class_image(i % CLASSES, i, size=200)[:160]
        with open(os.path.join(folder, f"{i:06d}.jpg"), "wb") as out:
            out.write(encode(image, "JPEG", quality=90))

    list(map_ordered(write, range(start, start + count), threads=4))


def make_split(data: str, out: str) -> str:
    config = SplitConfig(val_fraction=0.1, test_fraction=0.1, min_images_per_class=1)
    write_split(split_dataset(data, config), out)
    return out


def best_of(repeats: int, *measures):
    """Runs the measures interleaved `repeats` times; returns each one's best (max) value."""
    results = [[] for _ in measures]
    for _ in range(repeats):
        for values, measure in zip(results, measures, strict=True):
            values.append(measure())
    return [max(values) for values in results]


def extraction_vs_forward(tmp: str, config: ExtractConfig, args) -> list[float]:
    """Images/s of: our extraction, the bare traced forward pass, `model.predict`."""
    import numpy as np
    import tensorflow as tf

    from kftransfer.components.core.features import (
        build_backbone,
        extract_features,
        feature_extractor,
        predict_function,
    )

    split = f"{tmp}/split"
    extractor = feature_extractor(build_backbone(config), config.pooling)
    shape = (args.images, args.size, args.size, 3)
    tensors = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    batches = [tf.constant(tensors[i : i + 32]) for i in range(0, args.images, 32)]
    forward = predict_function(extractor)

    def ours() -> float:
        return extract_features(split, f"{tmp}/f", config)["images_per_second"]

    def bare() -> float:
        return args.images / timed(lambda: [forward(b).numpy() for b in batches])[0]

    def keras_predict() -> float:
        return args.images / timed(extractor.predict, tensors, batch_size=32, verbose=0)[0]

    return best_of(args.repeats, ours, bare, keras_predict)


def decode_vs_keras(tmp: str, args) -> list[float]:
    """Images/s of our decode pipeline and of `image_dataset_from_directory`."""
    import keras

    from kftransfer.components.core.images import image_dataset

    data = f"{tmp}/data"
    files = sorted(os.path.join(folder, n) for folder, _, names in os.walk(data) for n in names)

    def ours() -> float:
        dataset = image_dataset(files, [0] * len(files), args.size, 32)
        return len(files) / timed(lambda: [b for b in dataset])[0]

    def theirs() -> float:
        size = (args.size, args.size)
        dataset = keras.utils.image_dataset_from_directory(data, image_size=size, verbose=False)
        return len(files) / timed(lambda: [b for b in dataset])[0]

    return best_of(args.repeats, ours, theirs)


def child_peak_rss(split: str, out: str, config: ExtractConfig) -> int:
    """Runs one extraction in a fresh process; returns its peak RSS in bytes."""
    code = (
        "from kftransfer.components.core.config import ExtractConfig\n"
        "from kftransfer.components.core.features import extract_features\n"
        f"extract_features({split!r}, {out!r}, ExtractConfig(**{config.__dict__!r}), "
        f"{out + '-cache'!r})\n"
    )
    return peak_rss_of(code)


def rss_at_n_and_4n(tmp: str, config: ExtractConfig, args) -> tuple[int, int]:
    write_jpegs(f"{tmp}/data4", 4 * args.images)
    small = child_peak_rss(f"{tmp}/split", f"{tmp}/rss1", config)
    large = child_peak_rss(make_split(f"{tmp}/data4", f"{tmp}/split4"), f"{tmp}/rss4", config)
    return small, large


def full_vs_incremental(
    tmp: str, data: str, images: int, config: ExtractConfig, repeats: int
) -> tuple[float, float]:
    """Best wall seconds of a cold full extraction and of the re-extraction after +10%.

    Writes `images` files into `data` first; both runs use the cache (features, pixels).
    """
    from kftransfer.components.core.features import extract_features

    write_jpegs(data, images)
    split = make_split(data, f"{data}-split")
    write_jpegs(data, images // 10, start=10 * images)
    grown = make_split(data, f"{data}-split-grown")
    full, again = [], []
    for run in range(repeats):
        cache = f"{data}-cache{run}"
        full.append(timed(extract_features, split, f"{tmp}/full", config, cache)[0])
        seconds, manifest = timed(extract_features, grown, f"{tmp}/inc", config, cache)
        assert sum(s["extracted"] for s in manifest["splits"].values()) == images // 10
        again.append(seconds)
    return min(full), min(again)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="N")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = ExtractConfig(backbone=args.backbone, weights="none", image_size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(f"{tmp}/data", args.images)
        make_split(f"{tmp}/data", f"{tmp}/split")
        ours, bare, keras_predict = extraction_vs_forward(tmp, config, args)
        decode, keras_decode = decode_vs_keras(tmp, args)
        small, large = rss_at_n_and_4n(tmp, config, args)
        n, n5 = args.images, 5 * args.images
        full, again = full_vs_incremental(tmp, f"{tmp}/inc-n", n, config, args.repeats)
        full5, again5 = full_vs_incremental(tmp, f"{tmp}/inc-5n", n5, config, 1)
    results = {
        "extraction / bare forward pass": (ours / bare, f"{ours:.0f} vs {bare:.0f} images/s"),
        "extraction / model.predict (in memory)": (
            ours / keras_predict,
            f"{ours:.0f} vs {keras_predict:.0f} images/s",
        ),
        "our decode / image_dataset_from_directory": (
            decode / keras_decode,
            f"{decode:.0f} vs {keras_decode:.0f} images/s",
        ),
        "peak RSS 4N / N": (large / small, f"{large / 2**20:.0f} vs {small / 2**20:.0f} MiB"),
        f"re-extract +10% / full extraction, N={n}": (again / full, f"{again:.1f} vs {full:.1f} s"),
        f"re-extract +10% / full extraction, 5N={n5}": (
            again5 / full5,
            f"{again5:.1f} vs {full5:.1f} s, one run",
        ),
    }
    print_ratios(
        (
            f"bench/extract.py: N={args.images} 200x160 JPEGs, {args.backbone} at {args.size} px, "
            f"weights=none, batch 32, best of {args.repeats}; {machine()}"
        ),
        results,
        50,
    )


if __name__ == "__main__":
    main()
