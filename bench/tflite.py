"""TFLite modes on real photos: test accuracy and size of each against the SavedModel.

On `../shared/data/fashion-mnist-3k` split with the pipeline's defaults, MobileNet with
the real ImageNet weights at 128 px and a head trained on its cached features
(`train_head`, default settings), assembled as `export` ships it (uint8 images in,
preprocessing inside): each `--tflite` mode is converted and judged by exactly what the
evaluation step runs (`tflite.convert_and_measure` on every test image; int8 calibrated
on 200 train images). Target: int8 within 1 point of the float model.

Usage: .venv/bin/python -m bench.tflite
"""

import os
import tempfile

from bench.common import machine, timed
from bench.trust import SHARED
from kftransfer.components.core import evaluate_tflite, serving
from kftransfer.components.core.backbones import load_backbone
from kftransfer.components.core.config import ExtractConfig, HeadConfig, SplitConfig
from kftransfer.components.core.features import extract_features
from kftransfer.components.core.fine_tune_model import build_fine_tune_model
from kftransfer.components.core.heads import train_head
from kftransfer.components.core.split import split_dataset, write_split
from kftransfer.components.core.tflite import convert_and_measure

SIZE = 128


def main() -> None:
    weights = os.path.join(SHARED, "weights", "mobilenet_1.0_224_imagenet_notop.weights.h5")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_split(
            split_dataset(os.path.join(SHARED, "data", "fashion-mnist-3k"), SplitConfig()),
            f"{tmp}/split",
        )
        config = ExtractConfig(backbone="mobilenet", weights=weights, image_size=SIZE)
        extract_features(f"{tmp}/split", f"{tmp}/features", config)
        head = train_head(f"{tmp}/features", HeadConfig()).model
        model = build_fine_tune_model(load_backbone("mobilenet", weights, SIZE), head, "avg")
        labels = [str(i) for i in range(head.output_shape[-1])]
        serving.write_saved_model(model, labels, f"{tmp}/saved")
        for mode in ("float", "fp16", "dynamic", "int8"):
            request = evaluate_tflite.tflite_request(f"{tmp}/split", SIZE, mode)
            seconds, (_, report) = timed(convert_and_measure, f"{tmp}/saved", request)
            rows.append((report, seconds))
    print(
        f"bench/tflite.py: fashion-mnist-3k, mobilenet (ImageNet weights) + default head at "
        f"{SIZE} px, {rows[0][0]['test_images']} test images; {machine()}"
    )
    for report, seconds in rows:
        print(
            f"  {report['mode']:8} accuracy {report['accuracy']:.4f} (SavedModel "
            f"{report['saved_model_accuracy']:.4f}, {report['drop_points']:+.2f} points lost), "
            f"{report['bytes'] / 2**20:5.2f} MiB, max |dp| {report['max_abs_difference']:.1e}, "
            f"{seconds:.0f} s"
        )


if __name__ == "__main__":
    main()
