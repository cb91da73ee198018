"""Checkpoints in a gs:// bucket: a preempted head run resumes from the emulator."""

import pytest

from kftransfer.components.core import checkpoints, listing, storage
from kftransfer.components.core.config import HeadConfig
from kftransfer.components.core.heads import train_head
from tests.unit.test_resume import PreemptAfter, Preempted, Record


def test_head_checkpoints_to_gcs_and_resumes(learnable, gcs_bucket):
    checkpoint = f"{gcs_bucket}/checkpoints/head"
    config = HeadConfig(head_epochs=4, head_patience=100)
    with pytest.raises(Preempted):
        train_head(learnable["features"], config, checkpoint, callbacks=[PreemptAfter(2)])
    names = sorted(storage.relative_to(i.uri, checkpoint) for i in listing.list_files(checkpoint))
    state = storage.read_json(f"{checkpoint}/state.json")
    assert state["files"]["last"] == "last-2.weights.h5"  # epoch 1's files are deleted
    assert names == sorted({*state["files"].values(), "state.json"})
    record = Record()
    result = train_head(learnable["features"], config, checkpoint, callbacks=[record])
    assert record.epochs == [3, 4] and len(result.history["loss"]) == 4
    assert storage.read_json(f"{checkpoint}/state.json")["ended"]  # kept until the stage is saved
    checkpoints.discard(checkpoint)
    assert listing.list_files_if_any(f"{gcs_bucket}/checkpoints") == []
