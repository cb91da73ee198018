"""Camera-photo input benchmarks, each a ratio of two measurements made in one run.

On photo-like 4000x3000 JPEGs (~3.3 MB each, `devtools.imagegen.photo`), and 200x160
ones for comparison:

1. our decode + resize (`images.decode_resized`: DCT-scaled JPEG decoding, then area
   averaging) / `keras.utils.image_dataset_from_directory` (full decode, then bilinear
   resize without anti-aliasing, Keras' default), images/s to `--size` (target >= 1.5),
   next to its ceiling: one full JPEG decode / one 1/8-scale decode, single-threaded.
   DCT scaling skips inverse-DCT work, never the entropy (Huffman) decoding of every
   coefficient, so no libjpeg-based loader can beat a full decode by more than that;
2. a fine-tuning epoch read from the pixel cache / the same epoch decoding every image
   (target >= 5): MobileNetV2 (weights=none) fine-tuned from its default unfreeze point,
   the same batches, augmentation and step count on both sides;
3. peak RSS of filling the pixel cache and of a fine-tuning epoch from it, 4N / N images
   (200x160 JPEGs), each in a fresh process (target <= 1.2).

Each pair is measured `--repeats` times, interleaved, and the best of each side compared
(Keras' loader is bimodal on this VM: passes alternate between ~38 and ~62 images/s, so
fewer than ~4 repeats can flatter us by 1.6x). Memory is bounded by the chunks in flight
(`pixels.READS_IN_FLIGHT` reads of ~64 MB, plus the one being unbatched), reached at about
five chunks (~11,500 rows at 96 px): N is chosen past that ramp, as a growing bucket is.

Usage: .venv/bin/python -m bench.photos [--photos 96] [--size 224] [--repeats 5]
"""

import argparse
import os
import tempfile

from bench.common import machine, peak_rss_of, print_ratios, timed
from bench.extract import best_of, write_jpegs
from devtools.imagegen import write_photos


def files_under(root: str) -> list[str]:
    return sorted(os.path.join(folder, n) for folder, _, names in os.walk(root) for n in names)


def decode_vs_keras(data: str, size: int, repeats: int) -> list[float]:
    """Images/s of our input pipeline and of `image_dataset_from_directory`, to `size`."""
    import keras

    from kftransfer.components.core.images import image_dataset

    files = files_under(data)

    ours = image_dataset(files, [0] * len(files), size, 32)
    theirs = keras.utils.image_dataset_from_directory(
        data, image_size=(size, size), batch_size=32, shuffle=False, verbose=False
    )
    for dataset in (ours, theirs):  # warm-up: trace the map functions, fill the page cache
        [b for b in dataset]

    def rate(dataset) -> float:
        return len(files) / timed(lambda: [b for b in dataset])[0]

    return best_of(repeats, lambda: rate(ours), lambda: rate(theirs))


def dct_scaling_ceiling(data: str, count: int = 16) -> float:
    """Seconds of a full JPEG decode / a 1/8-scale one, over `count` files, best of 3."""
    import tensorflow as tf

    encoded = [tf.io.read_file(f) for f in files_under(data)[:count]]

    def decode_all(ratio: int) -> float:
        return -timed(lambda: [tf.io.decode_jpeg(e, channels=3, ratio=ratio) for e in encoded])[0]

    full, eighth = best_of(3, lambda: decode_all(1), lambda: decode_all(8))
    return full / eighth


def fine_tune_model(size: int):
    """MobileNetV2 (random weights) + a head, its default top unfrozen, compiled."""
    import keras

    from kftransfer.components.core.backbones import load_backbone
    from kftransfer.components.core.classifier import compile_classifier
    from kftransfer.components.core.config import HeadConfig
    from kftransfer.components.core.fine_tune_model import build_fine_tune_model, set_trainable
    from kftransfer.components.core.heads import build_head

    backbone = load_backbone("mobilenet_v2", "none", size)
    model = build_fine_tune_model(backbone, build_head(1280, 2, HeadConfig()), "avg")
    set_trainable(backbone, "default")
    compile_classifier(model, keras.optimizers.Adam(3e-5))
    return model


def epoch_cached_vs_decoding(data: str, size: int, repeats: int, cache: str) -> list[float]:
    """Seconds of one fine-tuning epoch: from the pixel cache, and decoding every image."""
    from kftransfer.components.core import pixels
    from kftransfer.components.core.chunk_store import pixel_store
    from kftransfer.components.core.fine_tune_model import augmentation
    from kftransfer.components.core.images import image_dataset
    from kftransfer.components.core.training import quiet_unknown_length

    files = files_under(data)
    labels = [int("class1" in f) for f in files]
    shas = [f"{i:064x}" for i in range(len(files))]  # content keys; the files are distinct
    store = pixel_store(cache, size)
    pixels.fill(store, files, shas, size)
    augment = augmentation("flip,translation=0.05")
    model = fine_tune_model(size)

    def epoch(dataset) -> float:
        pairs = dataset.map(lambda x, y, _: (x, y))
        with quiet_unknown_length():
            return timed(model.fit, pairs, epochs=1, shuffle=False, verbose=0)[0]

    def cached() -> float:
        return -epoch(pixels.dataset(store, shas, labels, 32, shuffle_seed=0, augment=augment))

    def decoding() -> float:
        return -epoch(image_dataset(files, labels, size, 32, shuffle_seed=0, augment=augment))

    epoch(pixels.dataset(store, shas, labels, 32))  # warm-up: trace the training step
    fastest_cached, fastest_decoding = best_of(repeats, cached, decoding)
    return [-fastest_cached, -fastest_decoding]


PEAK_RSS_CHILD = """
import sys
from bench.photos import files_under
from kftransfer.components.core import pixels
from kftransfer.components.core.chunk_store import pixel_store
data, cache, size, what = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
files = files_under(data)
shas = [f"{i:064x}" for i in range(len(files))]
store = pixel_store(cache, size)
pixels.fill(store, files, shas, size)
if what == "epoch":
    from bench.photos import fine_tune_model
    batches = pixels.dataset(store, shas, [0] * len(files), 32, shuffle_seed=0)
    pairs = batches.map(lambda x, y, _: (x, y))
    fine_tune_model(size).fit(pairs, epochs=1, shuffle=False, verbose=0)
"""


def peak_rss(data: str, cache: str, size: int, what: str) -> int:
    """Peak RSS (bytes) of a fresh process filling the pixel cache (and, `epoch`, training)."""
    return peak_rss_of(PEAK_RSS_CHILD, data, cache, str(size), what)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=96, help="4000x3000 photos")
    parser.add_argument("--small", type=int, default=2000, help="200x160 JPEGs")
    parser.add_argument("--size", type=int, default=224, help="decode-to size")
    parser.add_argument("--train-size", type=int, default=96, help="fine-tuning input size")
    parser.add_argument(
        "--rss-images", type=int, default=12000, help="N of the RSS runs (past the ramp)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_photos(f"{tmp}/photos", args.photos)
        write_jpegs(f"{tmp}/small", args.small)
        results["ceiling: full decode / 1/8-scale decode, 4000x3000"] = (
            dct_scaling_ceiling(f"{tmp}/photos"), "one image at a time"
        )  # fmt: skip
        for name, data in (("4000x3000", f"{tmp}/photos"), ("200x160", f"{tmp}/small")):
            ours, keras_loader = decode_vs_keras(data, args.size, args.repeats)
            results[f"our decode / Keras' loader, {name} JPEGs"] = (
                ours / keras_loader, f"{ours:.0f} vs {keras_loader:.0f} images/s"
            )  # fmt: skip
        cached, decoding = epoch_cached_vs_decoding(
            f"{tmp}/photos", args.train_size, args.repeats, f"{tmp}/cache"
        )
        results["fine-tune epoch decoding / from the pixel cache, 4000x3000"] = (
            decoding / cached, f"{decoding:.1f} vs {cached:.1f} s"
        )  # fmt: skip
        write_jpegs(f"{tmp}/rss1", args.rss_images)
        write_jpegs(f"{tmp}/rss4", 4 * args.rss_images)
        for what in ("fill", "epoch"):
            small = peak_rss(f"{tmp}/rss1", f"{tmp}/c1-{what}", args.train_size, what)
            large = peak_rss(f"{tmp}/rss4", f"{tmp}/c4-{what}", args.train_size, what)
            results[f"peak RSS 4N / N, pixel cache {what}"] = (
                large / small, f"{large / 2**20:.0f} vs {small / 2**20:.0f} MiB"
            )  # fmt: skip
    print_ratios(
        (
            f"bench/photos.py: {args.photos} 4000x3000 photo-like JPEGs (and 200x160), decode to "
            f"{args.size} px, fine-tune mobilenet_v2 at {args.train_size} px, weights=none, "
            f"N={args.rss_images} for RSS, best of {args.repeats}; {machine()}"
        ),
        results,
    )


if __name__ == "__main__":
    main()
