"""KFP step caching locally: wall time of a second identical run / the first.

Both runs go through `kfp.local` with its step cache on (`kftransfer run --cache`): the
second finds every step's outputs by its cache key and skips it.

Usage: .venv/bin/python -m bench.pipeline_cache [--images 300]
"""

import argparse
import tempfile

from bench.common import machine, timed
from devtools.imagegen import write_class_folders
from kftransfer.pipelines.runs import run_locally
from kftransfer.pipelines.transfer_learning import task_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        per_class = args.images // 3
        write_class_folders(
            f"{tmp}/data", {"red": per_class, "green": per_class, "blue": per_class}
        )
        arguments = {
            "source": f"{tmp}/data",
            "backbone": "vgg16",
            "weights": "none",
            "image_size": 64,
            "head_epochs": 20,
            "head_normalize": True,
            "fine_tune_epochs": 2,
            "export_uri": f"{tmp}/models",
        }
        first, summary = timed(run_locally, arguments, f"{tmp}/runs", caching=True)
        second, again = timed(run_locally, arguments, f"{tmp}/runs", caching=True)
        ran = [task for task in task_names() if task not in again["cached"]]
    print(
        f"bench/pipeline_cache.py: {args.images} generated images, vgg16 at 64 px, weights=none, "
        f"2 fine-tuning epochs; {machine()}"
    )
    print(f"  first run  {first:7.1f} s ({len(summary['seconds']) - 1} steps run)")
    print(f"  second run {second:7.1f} s (ran {', '.join(ran)}; the rest from the cache)")
    print(f"  ratio second/first = {second / first:.2f}")


if __name__ == "__main__":
    main()
