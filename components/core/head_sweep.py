"""A search over head settings on the cached features, chosen by validation accuracy.

A head epoch on cached features costs ~1/150 of an epoch with the backbone in the loop,
so trying a dozen heads costs seconds, not node-hours. Trial 0 is always the configured
head; the others are drawn (seeded, without repeats) from `SPACE`: learning rate, hidden
widths (a linear head included), dropout and label smoothing. The winner is the trial with
the best validation accuracy (the earliest on ties): the test split is never looked at.
No trial starts once `sweep_budget` seconds have passed.
"""

import dataclasses
import itertools
import math
import time

import numpy as np

from kftransfer.components.core import storage
from kftransfer.components.core.config import HeadConfig
from kftransfer.components.core.progress import LOGGER

SPACE = {
    "head_learning_rate": (3e-4, 1e-3, 3e-3),
    "head_units": ("", "256", "1024"),
    "head_dropout": (0.2, 0.5),
    "head_label_smoothing": (0.0, 0.1),
}
SWEPT = tuple(SPACE)


def candidates(config: HeadConfig) -> list[HeadConfig]:
    """The configured head, then up to `config.head_sweep - 1` distinct others from SPACE.

    A linear head (`head_units=''`) has no dropout, so its dropout is left as configured
    rather than counted as another setting.
    """
    base = dataclasses.replace(config, head_sweep=0)
    seen = {_key(base)}
    found = [base]
    grid = [dict(zip(SPACE, values, strict=True)) for values in itertools.product(*SPACE.values())]
    for index in np.random.default_rng(config.seed).permutation(len(grid)):
        if len(found) >= config.head_sweep:
            break
        overrides = grid[index]
        if overrides["head_units"] == "":
            overrides = {**overrides, "head_dropout": config.head_dropout}
        candidate = dataclasses.replace(base, **overrides)
        if _key(candidate) not in seen:
            seen.add(_key(candidate))
            found.append(candidate)
    return found


def _key(config: HeadConfig) -> tuple:
    return tuple(getattr(config, name) for name in SWEPT)


def sweep_heads(
    features_uri: str,
    config: HeadConfig,
    train,
    checkpoint_uri: str = "",
    tensorboard_uri: str = "",
):
    """Trains the candidate heads in turn within the budget; returns (winner, trials).

    Args:
        features_uri: the features folder.
        config: the configured head, with `head_sweep` trials and `sweep_budget` seconds.
        train: `train_head`'s signature: `(features_uri, config, checkpoint_uri,
            tensorboard_uri)` -> `TrainResult`.
        checkpoint_uri: each trial checkpoints in its own `trial-<i>` folder below it.
        tensorboard_uri: each trial logs to its own `trial-<i>` folder below it ('' none).

    Returns:
        The winning `TrainResult` with its config, and one record per trial run: its
        settings, validation accuracy and loss, epochs and seconds, and which one won (the
        best validation accuracy among trials whose validation loss is finite: a diverged
        trial's accuracy is that of NaN weights).
    """
    start = time.perf_counter()
    trials, results = [], []
    for index, candidate in enumerate(candidates(config)):
        if index and time.perf_counter() - start > config.sweep_budget:
            LOGGER.info("head sweep: budget of %.0f s spent after %d trials", *(
                config.sweep_budget, index))  # fmt: skip
            break
        began = time.perf_counter()
        trial = f"trial-{index}"
        folder = storage.join(checkpoint_uri, trial) if checkpoint_uri else ""
        logs = storage.join(tensorboard_uri, trial) if tensorboard_uri else ""
        result = train(features_uri, candidate, folder, logs)
        summary = result.summary()
        trials.append(_record(index, candidate, summary, time.perf_counter() - began))
        results.append((result, candidate))
        LOGGER.info("head sweep trial %d: %s", index, trials[-1])
    finite = [i for i, trial in enumerate(trials) if math.isfinite(trial["val_loss"])]
    best = max(finite or range(len(trials)), key=lambda i: (trials[i]["val_accuracy"], -i))
    trials[best]["chosen"] = True
    return results[best], trials


def _record(index: int, candidate: HeadConfig, summary: dict, seconds: float) -> dict:
    return {
        "trial": index,
        **{name: getattr(candidate, name) for name in SWEPT},
        "val_accuracy": summary["val_accuracy"],
        "val_loss": summary["val_loss"],
        "epochs": int(summary["epochs"]),
        "seconds": round(seconds, 2),
        "chosen": False,
    }


def sweep_metrics(trials: list[dict]) -> dict[str, float]:
    """Flat numbers for KFP metrics: trials run, the winner, each trial's validation accuracy."""
    chosen = next(t for t in trials if t["chosen"])
    metrics = {
        "sweep_trials": len(trials),
        "sweep_chosen_trial": chosen["trial"],
        "sweep_seconds": round(sum(t["seconds"] for t in trials), 2),
    }
    metrics.update({f"sweep_trial_{t['trial']}_val_accuracy": t["val_accuracy"] for t in trials})
    return metrics
