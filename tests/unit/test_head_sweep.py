"""The head sweep: distinct seeded candidates, chosen by validation, bounded by its budget."""

import dataclasses
import math
import os

import pytest

from kftransfer.components.core import head_sweep, layout
from kftransfer.components.core.config import HeadConfig
from kftransfer.components.core.errors import ParameterError
from kftransfer.components.core.heads import train_head, train_head_stage
from kftransfer.components.core.training import StageOutputs


def test_candidates_start_with_the_configured_head_and_never_repeat():
    config = HeadConfig(head_sweep=12, seed=3)
    found = head_sweep.candidates(config)
    assert len(found) == 12
    assert found[0] == dataclasses.replace(config, head_sweep=0)
    keys = {tuple(getattr(c, n) for n in head_sweep.SWEPT) for c in found}
    assert len(keys) == 12
    assert all(c.head_dropout == config.head_dropout for c in found if c.head_units == "")
    assert head_sweep.candidates(config) == found  # seeded
    assert head_sweep.candidates(dataclasses.replace(config, seed=4)) != found
    assert len(head_sweep.candidates(HeadConfig(head_sweep=1000))) < 1000  # the whole grid


def test_sweep_settings_are_checked():
    with pytest.raises(ParameterError, match="--sweep-budget must be > 0 seconds, got 0.0"):
        HeadConfig(head_sweep=4, sweep_budget=0)
    with pytest.raises(ParameterError, match="--head-sweep must be >= 0, got -1"):
        HeadConfig(head_sweep=-1)


def test_the_stage_keeps_the_best_trial_on_validation(learnable, tmp_path):
    config = HeadConfig(head_sweep=4, head_epochs=8, head_normalize=True, seed=1)
    outputs = StageOutputs(str(tmp_path / "head"), str(tmp_path / "curves.html"))
    summary = train_head_stage(learnable["features"], config, outputs)
    trials = summary["sweep"]
    assert [t["trial"] for t in trials] == [0, 1, 2, 3]
    chosen = [t for t in trials if t["chosen"]]
    assert len(chosen) == 1
    assert chosen[0]["val_accuracy"] == max(t["val_accuracy"] for t in trials)
    assert summary["val_accuracy"] == chosen[0]["val_accuracy"]
    assert summary["sweep_trials"] == 4 and summary["sweep_chosen_trial"] == chosen[0]["trial"]
    assert {f"sweep_trial_{i}_val_accuracy" for i in range(4)} <= set(summary)
    saved = layout.read_stage_config(str(tmp_path / "head"))
    for name in head_sweep.SWEPT:
        assert saved[name] == chosen[0][name]  # the kept head's own settings
    assert saved["head_sweep"] == 4  # found by a sweep (before: 0, "not swept", in the card)
    assert layout.read_stage_summary(str(tmp_path / "head"))["sweep"] == trials


def test_a_diverged_trial_loses_to_the_others(learnable, tmp_path):
    config = HeadConfig(head_sweep=3, head_epochs=3, head_learning_rate=1e30, seed=1)
    logs = tmp_path / "tensorboard"
    outputs = StageOutputs(str(tmp_path / "head"), str(tmp_path / "curves.html"), "", str(logs))
    summary = train_head_stage(learnable["features"], config, outputs)
    diverged, *others = summary["sweep"]
    assert math.isnan(diverged["val_loss"]) and not diverged["chosen"]
    assert any(t["chosen"] for t in others) and math.isfinite(summary["val_loss"])
    # each trial's TensorBoard logs (before: a sweep wrote none)
    assert sorted(os.listdir(logs)) == ["trial-0", "trial-1", "trial-2"]
    assert all(os.listdir(logs / trial / "train") for trial in os.listdir(logs))


def test_no_trial_starts_after_the_budget(learnable):
    config = HeadConfig(head_sweep=5, head_epochs=2, head_normalize=True, sweep_budget=1e-6)
    (result, chosen), trials = head_sweep.sweep_heads(learnable["features"], config, train_head)
    assert len(trials) == 1 and trials[0]["chosen"]
    assert chosen == dataclasses.replace(config, head_sweep=0)
    assert result.summary()["val_accuracy"] == trials[0]["val_accuracy"]
