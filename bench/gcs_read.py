"""Training input from a bucket: images/s from gs:// (with real latency) vs local disk.

Real GCS answers tens of ms after a request; the emulator on loopback answers at once and,
as a single Python process, serves one request at a time. So the bucket is read through
a proxy that adds `--latency` seconds to every request. Measured, interleaved, best of
`--repeats`:

1. the pixel cache (`pixels.dataset`: ~64 MB chunks, several in flight): images/s with the
   store in the bucket / on local disk (target >= 0.5);
2. the server's ceiling: one chunk read bare (no decoding, nothing else in flight), in
   images/s. The emulator is one single-threaded Python process and the proxy another,
   both on this machine's cores, so this bounds the bucket side here, not GCS;
3. for reference, images read one object each (`images.image_dataset`, the storage
   layer's 16 reader threads, as when no cache is given): bucket / local disk.

Usage: .venv/bin/python -m bench.gcs_read [--images 4000] [--size 160] [--latency 0.02]
"""

import argparse
import json
import os
import tempfile

from bench.common import gcs_emulator, machine, timed
from bench.extract import best_of, write_jpegs
from bench.photos import files_under
from devtools.proxy import latency_proxy
from kftransfer.components.core import listing, pixels, storage
from kftransfer.components.core.chunk_store import pixel_store
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.parallel import map_ordered


def images_per_second(dataset, expected: int) -> float:
    seconds, count = timed(lambda: sum(len(labels) for _, labels, _ in dataset))
    assert count == expected, (count, expected)
    return count / seconds


def upload_tree(local: str, remote: str) -> None:
    pairs = [(path, f"{remote}/{os.path.relpath(path, local)}") for path in files_under(local)]
    list(map_ordered(lambda pair: storage.upload_file(*pair), pairs, threads=8))


def rates(tmp: str, bucket: str, args) -> list[float]:
    """Images/s: pixel cache local / bucket, one object per image local / bucket, server."""
    write_jpegs(f"{tmp}/data", args.images)
    files = files_under(f"{tmp}/data")
    remote_files = [f"{bucket}/data/{os.path.relpath(p, f'{tmp}/data')}" for p in files]
    upload_tree(f"{tmp}/data", f"{bucket}/data")
    shas = [f"{i:064x}" for i in range(len(files))]
    pixels.fill(pixel_store(f"{tmp}/cache", args.size), files, shas, args.size)
    upload_tree(f"{tmp}/cache", f"{bucket}/cache")
    n, labels = len(files), [0] * len(files)
    largest = max(listing.list_files(f"{bucket}/cache"), key=lambda info: info.size)

    def pixel_rate(cache: str) -> float:
        store = pixel_store(cache, args.size)
        return images_per_second(pixels.dataset(store, shas, labels, 32, shuffle_seed=0), n)

    def image_rate(uris: list[str]) -> float:
        return images_per_second(image_dataset(uris, labels, args.size, 32), n)

    def server_rate() -> float:  # what the emulator + proxy can send: one chunk, bare
        rows = largest.size / (args.size * args.size * 3)
        return rows / timed(storage.read_bytes, largest.uri)[0]

    with latency_proxy(os.environ["STORAGE_EMULATOR_HOST"], args.latency) as url:
        os.environ["STORAGE_EMULATOR_HOST"] = url
        return best_of(
            args.repeats,
            lambda: pixel_rate(f"{tmp}/cache"),
            lambda: pixel_rate(f"{bucket}/cache"),
            lambda: image_rate(files),
            lambda: image_rate(remote_files),
            server_rate,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, gcs_emulator() as bucket:
        local_pixels, bucket_pixels, local_images, bucket_images, server = rates(tmp, bucket, args)
    ms = args.latency * 1000
    print(
        f"bench/gcs_read.py: {args.images} 200x160 JPEGs -> {args.size} px batches of 32, "
        f"bucket = GCS emulator + {ms:.0f} ms per request, best of {args.repeats}; {machine()}"
    )
    lines = {
        "pixel cache, local disk": local_pixels,
        "pixel cache, bucket": bucket_pixels,
        "one object per image, local disk": local_images,
        "one object per image, bucket": bucket_images,
        "the server's ceiling: one 64 MB chunk, bare read": server,
    }
    for name, rate in lines.items():
        print(f"  {name:<50} {rate:7.0f} images/s")
    ratios = {
        "pixel cache, bucket / local disk": bucket_pixels / local_pixels,
        "pixel cache, bucket / the server's ceiling": bucket_pixels / server,
        "one object per image, bucket / local disk": bucket_images / local_images,
    }
    for name, ratio in ratios.items():
        print(f"  {name:<50} {ratio:7.2f}")
    print(json.dumps({name: round(ratio, 3) for name, ratio in ratios.items()}))


if __name__ == "__main__":
    main()
