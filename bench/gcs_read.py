"""Reading images from a bucket: input-pipeline images/s from the GCS emulator vs local disk.

The same JPEGs go through `images.image_dataset` (read, decode, resize, batch) from a local
folder and from a `gs://` emulator bucket, with the storage layer's 16 reader threads and
with one; then again through a proxy that adds `--latency` seconds to every request, as
real GCS does (tens of ms to the first byte; the emulator on loopback has none, and as a
single Python process it serves one request at a time). Interleaved, best of `--repeats`.

Usage: .venv/bin/python -m bench.gcs_read [--images 1000]
"""

import argparse
import os
import tempfile

from bench.common import gcs_emulator, machine, timed
from bench.extract import best_of, write_jpegs
from devtools.proxy import Proxy
from kftransfer.components.core import storage
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.parallel import map_ordered


def images_per_second(uris: list[str], threads: int) -> float:
    dataset = image_dataset(uris, [0] * len(uris), 160, 32, read_threads=threads)
    seconds, count = timed(lambda: sum(len(labels) for _, labels, _ in dataset))
    assert count == len(uris)
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, gcs_emulator() as bucket:
        write_jpegs(f"{tmp}/data", args.images)
        local = sorted(os.path.join(d, n) for d, _, names in os.walk(f"{tmp}/data") for n in names)
        remote = [f"{bucket}/data/{os.path.relpath(path, f'{tmp}/data')}" for path in local]

        def upload(pair):
            storage.upload_file(*pair)

        list(map_ordered(upload, zip(local, remote, strict=True), threads=8))
        rates = best_of(
            args.repeats,
            lambda: images_per_second(local, 16),
            lambda: images_per_second(remote, 16),
            lambda: images_per_second(remote, 1),
        )
        with Proxy(os.environ["STORAGE_EMULATOR_HOST"], latency=args.latency) as proxy:
            os.environ["STORAGE_EMULATOR_HOST"] = proxy.url
            slow = best_of(
                args.repeats,
                lambda: images_per_second(remote, 16),
                lambda: images_per_second(remote, 1),
            )
    local_rate, threaded, serial = rates
    slow_threaded, slow_serial = slow
    print(
        f"bench/gcs_read.py: {args.images} 200x160 JPEGs -> 160 px batches of 32, best of "
        f"{args.repeats}; {machine()}"
    )
    print(f"  local disk                 {local_rate:7.0f} images/s")
    print(f"  GCS emulator, 16 threads   {threaded:7.0f} images/s")
    print(f"  GCS emulator, 1 thread     {serial:7.0f} images/s")
    print(
        f"  ratios: emulator/local = {threaded / local_rate:.2f}, "
        f"16 threads/1 thread = {threaded / serial:.2f}"
    )
    ms = args.latency * 1000
    print(f"  GCS emulator + {ms:.0f} ms per request, 16 threads   {slow_threaded:7.0f} images/s")
    print(f"  GCS emulator + {ms:.0f} ms per request, 1 thread     {slow_serial:7.0f} images/s")
    print(f"  ratio with latency: 16 threads/1 thread = {slow_threaded / slow_serial:.2f}")


if __name__ == "__main__":
    main()
