"""What one fine-tuning step costs on this machine under each compile and precision setting.

The fine-tuning model exactly as the pipeline builds it for the recipe's defaults
(MobileNet with the real ImageNet weights at 128 px, unfrozen from its default layer, the
recipe's optimizer, batch 16, uint8 images in), trained on random images for a fixed
number of steps after a warm-up; each setting in a fresh process, one after another:

    float32          what the pipeline runs on a CPU
    xla              the same, compiled with `jit_compile=True` (Keras leaves XLA off on CPUs)
    mixed_float16    `--mixed-precision on` (the pipeline's default on GPUs of capability >= 7)
    mixed_bfloat16   bfloat16 compute (AVX512_BF16 CPUs; not a pipeline setting)

Prints the CPU seconds per step of each and its ratio to float32: CPU seconds, because this
VM's wall clock moves with its host's load (docs/benchmarks.md).

Usage: .venv/bin/python -m bench.step_cost [--steps 40]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import machine
from bench.trust import SHARED

VARIANTS = ("float32", "xla", "mixed_float16", "mixed_bfloat16")
SIZE, BATCH, CLASSES, WARMUP = 128, 16, 10, 8


def measure(variant: str, steps: int) -> dict:
    """CPU and wall seconds per training step of one setting (run in its own process)."""
    import keras
    import numpy as np

    from kftransfer.components.core.backbones import load_backbone
    from kftransfer.components.core.classifier import compile_classifier
    from kftransfer.components.core.config import FineTuneConfig
    from kftransfer.components.core.fine_tune import fine_tune_optimizer
    from kftransfer.components.core.fine_tune_model import build_fine_tune_model, set_trainable

    if variant.startswith("mixed_"):
        keras.config.set_dtype_policy(variant)
    weights = os.path.join(SHARED, "weights", "mobilenet_1.0_224_imagenet_notop.weights.h5")
    backbone = load_backbone("mobilenet", weights, SIZE)
    features = keras.Input((backbone.base.output_shape[-1],))
    head = keras.Model(features, keras.layers.Dense(CLASSES, activation="softmax")(features))
    model = build_fine_tune_model(backbone, head, "avg")
    set_trainable(backbone, "default")
    config = FineTuneConfig()
    optimizer = fine_tune_optimizer(config, steps + WARMUP, backbone.layers())
    compile_classifier(
        model, optimizer, config.fine_tune_label_smoothing, jit_compile=variant == "xla"
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH * (steps + WARMUP), SIZE, SIZE, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, len(images))
    warm = BATCH * WARMUP
    model.fit(images[:warm], labels[:warm], batch_size=BATCH, epochs=1, verbose=0)
    cpu, wall = time.process_time(), time.perf_counter()
    model.fit(images[warm:], labels[warm:], batch_size=BATCH, epochs=1, verbose=0)
    return {
        "cpu_ms": 1000 * (time.process_time() - cpu) / steps,
        "wall_ms": 1000 * (time.perf_counter() - wall) / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.steps)))
        return
    results = {}
    for variant in VARIANTS:
        command = [sys.executable, "-m", "bench.step_cost", "--variant", variant,
                   "--steps", str(args.steps)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"bench/step_cost.py: MobileNet (ImageNet weights) fine-tuning step, {SIZE} px, batch "
        f"{BATCH}, default unfreeze and recipe, {args.steps} steps after {WARMUP}; {machine()}"
    )
    base = results["float32"]["cpu_ms"]
    for variant, result in results.items():
        print(
            f"  {variant:15} {result['cpu_ms']:6.0f} CPU ms/step ({result['cpu_ms'] / base:4.2f}x "
            f"float32), {result['wall_ms']:6.0f} wall ms/step"
        )


if __name__ == "__main__":
    main()
