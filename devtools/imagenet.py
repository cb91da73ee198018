"""The shared real ImageNet photos and the real MobileNet classifier, for tests and benchmarks."""

import os

import numpy as np


def sample_photos(shared: str) -> tuple[list[str], np.ndarray]:
    """The paths of `shared`/data/imagenet-samples and their ImageNet class ids.

    A file is named `imagenet_NN_CLASS.jpg` (../shared/data/README.md).
    """
    folder = os.path.join(shared, "data", "imagenet-samples")
    names = sorted(os.listdir(folder))
    truth = np.array([int(name.rsplit("_", 1)[1].split(".")[0]) for name in names])
    return [os.path.join(folder, name) for name in names], truth


def mobilenet_classifier(shared: str):
    """MobileNet with its real ImageNet weights and top, on uint8 images as we decode them."""
    import keras

    from kftransfer.components.core.backbones import REGISTRY
    from kftransfer.components.core.layers import Preprocess

    weights = os.path.join(shared, "weights", "mobilenet_1.0_224_imagenet.weights.h5")
    images = keras.Input((224, 224, 3), dtype="uint8")
    pixels = Preprocess(REGISTRY["mobilenet"].preprocessing)(images)
    return keras.Model(images, keras.applications.MobileNet(weights=weights)(pixels))
