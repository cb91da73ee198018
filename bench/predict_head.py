"""What `predict`'s header check costs: images/s with it / without it, in one run.

`predict` reads the first 128 KiB of every local image (`predict._refused_by_header`)
before TensorFlow reads it whole, and checks every `gs://` image's header in the bytes the
batches read (`predict.HeaderScreen`), so that a decompression bomb or a BMP TensorFlow
misreads is never decoded. Measured on photo-like 4000x3000 JPEGs
(`devtools.imagegen.photo`, ~3.3 MB each), from local disk and from a bucket (the GCS
emulator behind a proxy that adds `--latency` seconds to every request, as real GCS
answers tens of ms after a request), with a small model, so that input dominates as it
does on a CPU. "Without" is the same code with both checks replaced by ones that refuse
nothing. Interleaved, best of `--repeats`; a ratio near 1 means the check is free.

Usage: .venv/bin/python -m bench.predict_head [--photos 48] [--latency 0.02] [--repeats 3]
"""

import argparse
import os
import tempfile

import keras

from bench.common import gcs_emulator, machine, print_ratios, timed
from bench.extract import best_of
from bench.gcs_read import upload_tree
from devtools.imagegen import write_photos
from devtools.proxy import latency_proxy
from kftransfer.components.core import predict

CLASSES = ["a", "b"]


def small_model(size: int = 96) -> keras.Model:
    """Raw uint8 images in, two class probabilities out: little work per image."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(x))


def images_per_second(model: keras.Model, uris: list[str], checked: bool) -> float:
    """`predict.predict` over `uris`, with the header checks or with ones refusing nothing."""
    check, problem = predict._refused_by_header, predict.header_problem
    if not checked:
        predict._refused_by_header = lambda *_: {}
        predict.header_problem = lambda *_: None
    try:
        seconds, answers = timed(lambda: list(predict.predict(model, CLASSES, uris)))
    finally:
        predict._refused_by_header, predict.header_problem = check, problem
    assert len(answers) == len(uris) and not any(a.error for a in answers)
    return len(uris) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = small_model()
    with tempfile.TemporaryDirectory() as tmp, gcs_emulator() as bucket:
        local = write_photos(f"{tmp}/photos", args.photos)
        upload_tree(f"{tmp}/photos", f"{bucket}/photos")
        remote = [f"{bucket}/photos/{os.path.relpath(p, f'{tmp}/photos')}" for p in local]
        with latency_proxy(os.environ["STORAGE_EMULATOR_HOST"], args.latency) as url:
            os.environ["STORAGE_EMULATOR_HOST"] = url
            rates = best_of(
                args.repeats,
                *(
                    lambda uris=uris, checked=checked: images_per_second(model, uris, checked)
                    for uris in (local, remote)
                    for checked in (True, False)
                ),
            )
    local_with, local_without, bucket_with, bucket_without = rates
    print_ratios(
        f"bench/predict_head.py: predict over {args.photos} 4000x3000 JPEGs, with the header "
        f"check / without; bucket = GCS emulator + {args.latency * 1000:.0f} ms per request, "
        f"best of {args.repeats}; {machine()}",
        {
            "local disk, images/s with / without": (
                local_with / local_without,
                f"{local_with:.1f} / {local_without:.1f} images/s",
            ),
            "bucket, images/s with / without": (
                bucket_with / bucket_without,
                f"{bucket_with:.1f} / {bucket_without:.1f} images/s",
            ),
        },
    )


if __name__ == "__main__":
    main()
