"""The run folder's own files (`pipelines/summary.py`) are written whole or not at all."""

import json
import os

import pytest

from kftransfer.pipelines.summary import SUMMARY_FILE, exclusion_list, write_summary


def test_a_summary_that_fails_to_write_leaves_the_last_one_whole(tmp_path):
    """Before: `json.dump` into the open file left `{"run": "b", "bad": ` behind."""
    write_summary(str(tmp_path), {"run": "a"})
    with pytest.raises(TypeError):
        write_summary(str(tmp_path), {"run": "b", "bad": object()})
    assert json.loads((tmp_path / SUMMARY_FILE).read_text()) == {"run": "a"}
    assert os.listdir(tmp_path) == [SUMMARY_FILE]


def test_the_exclusion_list_holds_the_chosen_issues_then_what_was_excluded(tmp_path):
    issues = tmp_path / "label_issues.csv"
    issues.write_text("uri,given,suggested,score\n/d/a.jpg,x,y,0.1\n/d/b.jpg,y,x,0.2\n")
    already = tmp_path / "old.txt"
    already.write_text("/d/z.jpg\n")
    summary = {"run": str(tmp_path), "trust": {"label_issues_csv": str(issues)}}
    path, added = exclusion_list(summary, 1, str(already))
    assert added == 1
    assert (tmp_path / "excluded.txt").read_text() == "/d/a.jpg\n/d/z.jpg\n"
    assert path == str(tmp_path / "excluded.txt")
    assert sorted(os.listdir(tmp_path)) == ["excluded.txt", "label_issues.csv", "old.txt"]
