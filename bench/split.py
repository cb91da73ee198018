"""The split on a growing bucket: a nightly re-split after +10% images / the full split.

With `--cache-uri`, the split reads and decodes only files its listing shows to be new or
changed (`validation_cache`). Measured in one run, on 200x160 JPEGs:

1. local disk, N images (`--images`): a cold split (nothing cached), then 10% more images
   and the re-split, wall time again / full (target <= 0.15); the re-split must have read
   exactly the new images and give the rows a cold split of the grown folder gives;
2. the same on the GCS emulator with `--gcs-images` (its uploads rewrite its whole
   metadata, O(n) each, so a smaller set; its per-file read rate does not depend on n);
3. peak RSS of a cold split of 4N / N local images, each in a fresh process (<= 1.2).

Usage: .venv/bin/python -m bench.split [--images 10000] [--gcs-images 2000]
"""

import argparse
import json
import tempfile

from bench.common import gcs_emulator, machine, peak_rss_of, timed
from bench.extract import CLASSES
from devtools.imagegen import class_image, encode
from kftransfer.components.core import storage
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.split import split_dataset

CONFIG = SplitConfig(min_images_per_class=1)


def write_images(root: str, count: int, start: int = 0) -> None:
    """Writes `count` distinct 200x160 JPEGs in class folders (local or gs://)."""

    def write(i: int) -> None:
        image = class_image(i % CLASSES, i, size=200)[:160]
        uri = storage.join(root, f"class{i % CLASSES}", f"{i:06d}.jpg")
        storage.write_bytes(uri, encode(image, "JPEG", quality=90))

    list(map_ordered(write, range(start, start + count), threads=8))


def full_and_again(root: str, cache: str, images: int) -> tuple[float, float]:
    """Seconds of a cold split of `images` files, and of the re-split after +10%."""
    full, _ = timed(split_dataset, root, CONFIG, cache)
    write_images(root, images // 10, start=images)
    again, result = timed(split_dataset, root, CONFIG, cache)
    expected = {"checked": images // 10, "reused": images}
    assert result.stats["validation"] == expected, result.stats["validation"]
    cold = split_dataset(root, CONFIG)
    assert cold.rows == result.rows and cold.labels == result.labels, "not a cold split's rows"
    return full, again


RSS_CHILD = """
import sys
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.split import split_dataset
split_dataset(sys.argv[1], SplitConfig(min_images_per_class=1), sys.argv[2])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--gcs-images", type=int, default=2_000)
    parser.add_argument("--rss-images", type=int, default=5_000, help="N of the RSS runs")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_images(f"{tmp}/warm", 100)
        split_dataset(f"{tmp}/warm", CONFIG)  # warm-up: TensorFlow's first decode
        write_images(f"{tmp}/data", args.images)
        full, again = full_and_again(f"{tmp}/data", f"{tmp}/cache", args.images)
        results[f"local, {args.images} files: re-split +10% / full"] = (again, full)
        with gcs_emulator() as bucket:
            write_images(f"{bucket}/data", args.gcs_images)
            full, again = full_and_again(f"{bucket}/data", f"{bucket}/cache", args.gcs_images)
        results[f"emulator, {args.gcs_images} files: re-split +10% / full"] = (again, full)
        write_images(f"{tmp}/rss1", args.rss_images)
        write_images(f"{tmp}/rss4", 4 * args.rss_images)
        small = peak_rss_of(RSS_CHILD, f"{tmp}/rss1", f"{tmp}/c1")
        large = peak_rss_of(RSS_CHILD, f"{tmp}/rss4", f"{tmp}/c4")
    print(f"bench/split.py: 200x160 JPEGs, N={args.rss_images} for RSS; {machine()}")
    ratios = {}
    for name, (again, full) in results.items():
        ratios[name] = again / full
        print(f"  {name:<48} {again / full:6.3f}   ({again:.2f} vs {full:.2f} s)")
    ratios["peak RSS 4N / N"] = large / small
    print(
        f"  {'peak RSS 4N / N':<48} {large / small:6.3f}   "
        f"({large / 2**20:.0f} vs {small / 2**20:.0f} MiB)"
    )
    print(json.dumps({name: round(ratio, 3) for name, ratio in ratios.items()}))


if __name__ == "__main__":
    main()
