"""What a KerasHub DINOv2-small backbone costs against MobileNetV2, per extracted image.

Builds both feature extractors at 224 px on this CPU: `mobilenet_v2` (random weights: the
cost does not depend on their values) and a randomly initialised preset shaped exactly
like KerasHub's `dinov2_small` (12 blocks, width 384, 6 heads, patch 14; 22.58M weights
at its native 518 px, the published preset's parameter count; 22.16M run at 224), saved and
loaded through `--backbone keras_hub:FOLDER` as a user's preset would be. Times the same
uint8 batches through each, alternating, and prints seconds per image and the ratio.

Usage: .venv/bin/python -m bench.backbone_cost [--rounds 5] [--batch 32]
"""

import argparse
import statistics
import tempfile
import time

import keras
import numpy as np

from bench.common import machine, print_ratios
from devtools.hub_presets import write_tiny_preset
from kftransfer.components.core.backbones import load_backbone
from kftransfer.components.core.features import feature_extractor, predict_function

SIZE = 224


def dinov2_small_preset(folder: str) -> str:
    """A random preset with `dinov2_small`'s architecture, stored at 518 px like the real one."""
    return write_tiny_preset(
        folder, "dinov2", size=518, seed=0, num_layers=12, hidden_dim=384, num_heads=6,
        intermediate_dim=1536,
    )  # fmt: skip


def seconds_per_image(predict, images: np.ndarray) -> float:
    start = time.perf_counter()
    predict(images).numpy()
    return (time.perf_counter() - start) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    images = np.random.default_rng(0).integers(0, 256, (args.batch, SIZE, SIZE, 3), np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        names = {"mobilenet_v2": "mobilenet_v2", "dinov2_small": f"keras_hub:{tmp}"}
        dinov2_small_preset(tmp)
        predicts, params = {}, {}
        for label, name in names.items():
            keras.utils.set_random_seed(0)
            backbone = load_backbone(name, "none", SIZE)
            extractor = feature_extractor(backbone, "avg")
            params[label] = extractor.count_params()
            predicts[label] = predict_function(extractor)
            predicts[label](images[:2])  # trace
    times = {label: [] for label in names}
    for _ in range(args.rounds):
        for label, predict in predicts.items():
            times[label].append(seconds_per_image(predict, images))
    median = {label: statistics.median(values) for label, values in times.items()}
    print_ratios(
        f"bench/backbone_cost.py: {SIZE} px, batch {args.batch}, {args.rounds} rounds "
        f"(medians); {machine()}",
        {
            "dinov2_small / mobilenet_v2, seconds per image": (
                median["dinov2_small"] / median["mobilenet_v2"],
                ", ".join(
                    f"{label} {1000 * median[label]:.1f} ms/image, {params[label] / 1e6:.2f}M "
                    "weights"
                    for label in names
                ),
            )
        },
    )


if __name__ == "__main__":
    main()
