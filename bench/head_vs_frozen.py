"""One epoch of the head on cached features vs one epoch with the frozen backbone in the loop.

Same images, same backbone, same head, same batch size; each epoch is timed after a
warm-up epoch (graph tracing), best of `--repeats`, interleaved. The ratio is what
caching bottleneck features buys per epoch (target >= 100x).

Usage: .venv/bin/python -m bench.head_vs_frozen [--images 2000] [--size 160] [--batch 64]
"""

import argparse
import tempfile

import keras

from bench.common import machine, timed
from bench.extract import best_of, make_split, write_jpegs
from kftransfer.components.core.classifier import compile_classifier
from kftransfer.components.core.config import ExtractConfig, HeadConfig
from kftransfer.components.core.features import build_backbone, extract_features
from kftransfer.components.core.fine_tune_model import build_fine_tune_model
from kftransfer.components.core.heads import build_head, features_dataset
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.layout import read_labels, read_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = ExtractConfig(backbone=args.backbone, weights="none", image_size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(f"{tmp}/data", args.images)
        split = make_split(f"{tmp}/data", f"{tmp}/split")
        manifest = extract_features(split, f"{tmp}/features", config)
        labels, rows = read_labels(split), read_rows(split, "train")
        head = build_head(manifest["dim"], len(labels), HeadConfig())
        compile_classifier(head, "adam", steps_per_execution=16)
        cached = features_dataset(f"{tmp}/features", "train", args.batch, shuffle_seed=0)
        frozen_model = build_fine_tune_model(build_backbone(config), head, config.pooling)
        compile_classifier(frozen_model, "adam")  # the backbone stays frozen: head only
        ids = [labels.index(r.label) for r in rows]
        images = image_dataset([r.uri for r in rows], ids, args.size, args.batch, shuffle_seed=0)
        images = images.map(lambda x, y, _: (x, y))

        def epoch(model, dataset):
            return lambda: 1 / timed(model.fit, dataset, epochs=1, verbose=0)[0]

        for model, dataset in [(head, cached), (frozen_model, images)]:
            model.fit(dataset, epochs=1, verbose=0)  # warm-up: trace
        head_rate, frozen_rate = best_of(
            args.repeats, epoch(head, cached), epoch(frozen_model, images)
        )
    trainable = sum(int(keras.ops.size(w)) for w in frozen_model.trainable_weights)
    print(
        f"bench/head_vs_frozen.py: {len(rows)} train images (200x160 JPEG), {args.backbone} at "
        f"{args.size} px, weights=none, batch {args.batch}, best of {args.repeats}; {machine()}"
    )
    print(f"  head epoch on cached features   {1 / head_rate:8.3f} s")
    print(
        f"  epoch with the frozen backbone  {1 / frozen_rate:8.3f} s "
        f"({trainable} trainable weights in both)"
    )
    print(f"  ratio = {head_rate / frozen_rate:.0f}x")


if __name__ == "__main__":
    main()
