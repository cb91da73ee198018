"""Devices for training: several GPUs (MirroredStrategy) and mixed precision."""

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

from kftransfer.components.core.progress import LOGGER


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over every visible GPU when there are several; else the default."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    names = [gpu.name for gpu in gpus] or ["CPU"]
    LOGGER.info("devices: %s (%d replica(s))", ", ".join(names), strategy.num_replicas_in_sync)
    return strategy


def mixed_precision_wanted(setting: str) -> bool:
    """Whether to train in mixed float16: `on`, `off`, or `auto` (GPUs of capability >= 7.0)."""
    if setting != "auto":
        return setting == "on"
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [
        tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus
    ]
    return bool(gpus) and all(c is not None and c >= (7, 0) for c in capabilities)


def deterministic_ops(setting: str) -> bool:
    """Makes TensorFlow's ops deterministic for this process when the setting asks; says so.

    `auto` means on without GPUs: on CPU the same seed then gives the same weights, bit for
    bit, at no measured cost (docs/benchmarks.md), where GPU kernels would be slower.
    `on` and `off` force it. Once on, it stays on for the process (a KFP step is one).

    Returns:
        Whether this call turned determinism on.
    """
    wanted = setting == "on" or (setting == "auto" and not tf.config.list_physical_devices("GPU"))
    if wanted:
        tf.config.experimental.enable_op_determinism()
        LOGGER.info("deterministic ops: on (same seed, same weights)")
    return wanted


@contextlib.contextmanager
def dtype_policy(mixed: bool) -> Iterator[None]:
    """Builds models under `mixed_float16` for the block when `mixed`, restoring the policy."""
    previous = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
        LOGGER.info("mixed precision: mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
