"""The whole DAG on real photos: Fashion-MNIST 3k, MobileNet with its real ImageNet weights.

Runs `kftransfer run` (kfp.local) on `../shared/data/fashion-mnist-3k` (10 classes x 300
real 28x28 photos) with backbone `mobilenet`, the weights file from `../shared/weights`,
at 128 px, with the project's default hyper-parameters (or overrides given as
`--param name=value`), and prints head-only and fine-tuned test accuracy, each stage's
wall time and the CPU seconds of all the steps' processes.

With `--backbones a,b` it compares backbones (each extracted and given a head; the best on
validation is fine-tuned) and prints every candidate; `--image-size 0` gives each its own
size. `lite0` in the list stands for `../shared/weights/efficientnet_lite0_imagenet.keras`.

Usage: .venv/bin/python -m bench.real_data [--shared ../shared] [--param fine_tune_epochs=5]
       .venv/bin/python -m bench.real_data --backbones mobilenet,lite0 --image-size 0
"""

import argparse
import json
import os
import resource
import tempfile

from bench.common import machine
from kftransfer.pipelines.runs import run_locally
from kftransfer.pipelines.settings import ClusterSettings


def parse_value(text: str):
    """A --param value as JSON if it parses (numbers, booleans), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    )
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--backbones", default="", metavar="A,B,...")
    args = parser.parse_args()
    shared = os.path.abspath(args.shared)
    lite0 = os.path.join(shared, "weights", "efficientnet_lite0_imagenet.keras")
    backbones = tuple(lite0 if b == "lite0" else b for b in args.backbones.split(",") if b)
    overrides = dict(item.split("=", 1) for item in args.param)
    arguments = {
        "source": os.path.join(shared, "data", "fashion-mnist-3k"),
        "backbone": "mobilenet",
        "weights": os.path.join(shared, "weights", "mobilenet_1.0_224_imagenet_notop.weights.h5"),
        "image_size": args.image_size,
        **{name: parse_value(value) for name, value in overrides.items()},
    }
    before = children_cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_locally(arguments, f"{tmp}/runs", ClusterSettings(backbones=backbones))
    cpu_seconds = children_cpu_seconds() - before
    head, tuned = summary["head"], summary["fine_tuned"]
    print(
        f"bench/real_data.py: fashion-mnist-3k, {args.backbones or 'mobilenet'} (real ImageNet "
        f"weights) at {args.image_size or 'native'} px, overrides {overrides or 'none'}; "
        f"{machine()}"
    )
    for candidate in summary["backbones"]:
        name = "lite0" if candidate["backbone"] == lite0 else candidate["backbone"]
        chosen = " (chosen)" if candidate["chosen"] else ""
        print(f"  backbone {name}: head validation {candidate['val_accuracy']:.4f}{chosen}")
    print(f"  head only   validation {head['val_accuracy']:.4f}  test {head['test_accuracy']:.4f}")
    print(
        f"  fine-tuned  validation {tuned['val_accuracy']:.4f}  test {tuned['test_accuracy']:.4f}"
        f"  (validation before fine-tuning {tuned['initial_val_accuracy']:.4f})"
    )
    print(f"  fine-tuned - head (test) = {tuned['test_accuracy'] - head['test_accuracy']:+.4f}")
    print("  wall seconds: " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()))
    print(f"  CPU seconds of the steps' processes: {cpu_seconds:.1f} (steadier than wall here)")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes (kfp.local's steps)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
