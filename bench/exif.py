"""What turning phone photos upright costs the decode, as a ratio measured in one run.

`images.decode_resized` reads each JPEG's EXIF orientation with graph ops (`exif`) and
turns the resized square. This measures the CPU time per image of it and of the same
decode without that step (the pixels of `DECODE_VERSION` "dct-area-1"), both as a
parallel `tf.data` map over the same files, interleaved `--repeats` times, best of each:
on 4000x3000 photo-like JPEGs (~3.3 MB, `devtools.imagegen.photo`) and on 200x160 ones,
each carrying a camera's ~16 KB EXIF segment with orientation 6
(`devtools.imagegen.with_exif_orientation`), each file read `--laps` times in one pass.
First, why it matters: the real MobileNet's top-1 on the 20 ImageNet photos of
`--shared`/data/imagenet-samples stored sideways with orientation 6, as a phone stores
them, decoded by us and with the tag ignored.

Usage: .venv/bin/python -m bench.exif [--shared ../shared] [--photos 24] [--small 2000] [--laps 10]
"""

import argparse
import os
import tempfile
import time
from collections.abc import Iterable

import numpy as np

from bench.common import machine, print_ratios
from bench.extract import best_of
from devtools.imagegen import (
    class_image,
    encode,
    photo,
    stored_sideways,
    with_exif_orientation,
)
from devtools.imagenet import mobilenet_classifier, sample_photos


def write_sideways(root: str, images: Iterable[np.ndarray]) -> list[str]:
    """Writes `images` as JPEGs tagged EXIF orientation 6; returns their paths."""
    os.makedirs(root, exist_ok=True)
    paths = []
    for i, pixels in enumerate(images):
        path = os.path.join(root, f"{i:05d}.jpg")
        with open(path, "wb") as out:
            out.write(with_exif_orientation(encode(pixels, "JPEG", quality=90), 6))
        paths.append(path)
    return paths


def decode_as_stored(data, size: int):
    """`decode_resized` of JPEG bytes without the EXIF orientation: the pixels as stored."""
    from kftransfer.components.core.images import decode_jpeg_scaled, resize_uint8

    return resize_uint8(decode_jpeg_scaled(data, size), size)


def upright_vs_as_stored(files: list[str], size: int, repeats: int, laps: int) -> list[float]:
    """CPU ms per image of `decode_resized` and of `decode_as_stored` (best of `repeats`).

    One iterator reads the files `laps` times, as one pass of the pipeline reads a
    bucket, so the per-iterator cost of optimizing the map function (tens of ms) is not
    counted per file. CPU time of every thread, not wall time: this VM's speed moves in
    steps from outside (docs/benchmarks.md), its CPU seconds do not.
    """
    import tensorflow as tf

    from kftransfer.components.core.images import decode_resized

    def pipeline(decode):
        return (
            tf.data.Dataset.from_tensor_slices(files)
            .repeat(laps)
            .map(lambda f: decode(tf.io.read_file(f), size), num_parallel_calls=tf.data.AUTOTUNE)
            .batch(32)
        )

    upright, as_stored = pipeline(decode_resized), pipeline(decode_as_stored)
    for dataset in (upright, as_stored):  # warm-up: trace, fill the page cache
        [b for b in dataset]

    def speed(dataset) -> float:  # images per CPU second, so that best_of's max is best
        start = time.process_time()
        [b for b in dataset]
        return laps * len(files) / (time.process_time() - start)

    return [
        1e3 / rate for rate in best_of(repeats, lambda: speed(upright), lambda: speed(as_stored))
    ]


def imagenet_top1_sideways(shared: str) -> dict[str, float]:
    """Top-1 of the real MobileNet on the shared ImageNet photos, three ways.

    Upright as given; stored sideways with orientation 6 (as a phone stores them) and
    decoded by us; the same sideways files with the tag ignored.
    """
    import numpy as np
    import tensorflow as tf

    from kftransfer.components.core.images import decode_resized

    paths, truth = sample_photos(shared)
    model = mobilenet_classifier(shared)
    upright = []
    for path in paths:
        with open(path, "rb") as file:
            upright.append(file.read())
    sideways = [stored_sideways(data) for data in upright]

    def top1(files: list[bytes], decode) -> float:
        batch = np.stack([decode(tf.constant(data), 224).numpy() for data in files])
        return float(np.mean(model.predict_on_batch(batch).argmax(axis=1) == truth))

    return {
        "upright": top1(upright, decode_resized),
        "ours": top1(sideways, decode_resized),
        "ignored": top1(sideways, decode_as_stored),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24, help="4000x3000 photos")
    parser.add_argument("--small", type=int, default=2000, help="200x160 JPEGs")
    parser.add_argument("--size", type=int, default=224, help="decode-to size")
    parser.add_argument("--laps", type=int, default=10, help="reads of each file per pass")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shared", default="../shared", help="with data/ and weights/")
    args = parser.parse_args()
    top1 = imagenet_top1_sideways(args.shared)
    results = {
        "ImageNet top-1 of photos stored sideways, ours / tag ignored": (
            top1["ours"] / top1["ignored"],
            f"{top1['ours']:.2f} vs {top1['ignored']:.2f}; upright {top1['upright']:.2f}",
        )
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, images in (
            ("4000x3000", (photo(4000, 3000, i) for i in range(args.photos))),
            ("200x160", (class_image(i % 5, i, 200)[:160] for i in range(args.small))),
        ):
            files = write_sideways(f"{tmp}/{name}", images)
            upright, as_stored = upright_vs_as_stored(files, args.size, args.repeats, args.laps)
            results[f"CPU per image, upright / as stored, {name} JPEGs"] = (
                upright / as_stored, f"{upright:.3f} vs {as_stored:.3f} ms"
            )  # fmt: skip
    print_ratios(
        (
            f"bench/exif.py: {args.photos} 4000x3000 and {args.small} 200x160 JPEGs tagged "
            f"orientation 6, each read {args.laps} times a pass, decode to {args.size} px, "
            f"best of {args.repeats}; {machine()}"
        ),
        results,
    )


if __name__ == "__main__":
    main()
