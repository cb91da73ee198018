"""Listing + validating + hashing throughput of the split, local disk vs GCS emulator.

Usage: .venv/bin/python -m bench.split [--images 10000] [--gcs-images 2000]

The emulator rewrites its whole metadata file on every upload (O(n) per object), so
filling it with 10,000 objects takes over half an hour; its read rate does not depend on
the object count, so a smaller set measures the same thing.
"""

import argparse
import tempfile

from bench.common import gcs_emulator, machine, timed
from devtools.imagegen import class_image, encode
from kftransfer.components.core import storage
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.split import split_dataset


def write_dataset(root: str, images: int, classes: int = 10) -> None:
    """Writes `images` distinct 32x32 PNGs in `classes` class folders (threads for gs://)."""

    def write(i: int) -> None:
        uri = storage.join(root, f"class{i % classes}", f"{i:06d}.png")
        storage.write_bytes(uri, encode(class_image(i % classes, i, size=32)))

    list(map_ordered(write, range(images), threads=16))


def files_per_second(root: str, images: int) -> float:
    seconds, result = timed(split_dataset, root, SplitConfig())
    assert sum(result.stats["totals"].values()) == images
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--gcs-images", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, gcs_emulator() as bucket:
        local, remote = f"{tmp}/data", f"{bucket}/data"
        write_dataset(local, args.images)
        write_dataset(remote, args.gcs_images)
        split_dataset(local, SplitConfig())  # warm-up: TensorFlow import, page cache
        local_rate = files_per_second(local, args.images)
        gcs_rate = files_per_second(remote, args.gcs_images)
    print(f"bench/split.py: 32x32 PNGs, {machine()}")
    print(
        f"  local disk   {args.images:6d} files {local_rate:8.0f} files/s (list+read+sha256+decode)"
    )
    print(f"  GCS emulator {args.gcs_images:6d} files {gcs_rate:8.0f} files/s")
    print(f"  ratio emulator/local = {gcs_rate / local_rate:.2f}")


if __name__ == "__main__":
    main()
