"""Per-slice metrics: a leaking class is told apart from a non-leaking one, masks and group arrays
both work, and slices without members or non-members are reported, not crashed on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from privaudit.errors import SignalError
from privaudit.evaluation.protocol import AttackResult, summarize
from privaudit.evaluation.slices import (render_slices, run_slices, slice_summary, slice_tables,
                                          standard_slices)

T, N = 4, 3000


@pytest.fixture(scope="module")
def population():
    """Class 0 leaks (members score +2 higher), class 1 does not, class 2 leaks a little."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], N // 3)
    keep = rng.random((T, N)) < 0.5
    shift = np.select([labels == 0, labels == 2], [2.0, 0.5], 0.0)
    scores = rng.normal(size=(T, N)) + keep * shift
    return labels, keep, scores


def _auc(doc, family, label, attack="a"):
    return doc["slicings"][family][label]["attacks"][attack]["summary"]["auc"]


def test_per_class_auc_separates_leaking_class(population):
    labels, keep, scores = population
    doc = slice_tables({"a": scores}, keep, {"class": labels}, fprs=(1e-2,), n_boot=50)
    leak, none, weak = (_auc(doc, "class", f"class={c}") for c in range(3))
    assert leak["lo"] > 0.85 and leak["mean"] > 0.88
    assert abs(none["mean"] - 0.5) < 0.04 and none["lo"] < 0.5 < none["hi"]
    assert none["hi"] < weak["lo"] and weak["hi"] < leak["lo"]
    row = doc["slicings"]["class"]["class=0"]
    assert row["n"] == N // 3 and row["status"] == "ok"
    assert row["members"]["mean"] + row["non_members"]["mean"] == N // 3
    assert row["members"]["min"] == int(keep[:, labels == 0].sum(axis=1).min())
    json.dumps(doc)  # JSON-serialisable


def test_slice_equals_summarize_on_the_slice(population):
    labels, keep, scores = population
    mask = labels == 2
    entry = slice_summary(scores, keep, mask, fprs=(1e-2,), n_boot=20, seed=3)
    _, ref = summarize(scores[:, mask], keep[:, mask], fprs=(1e-2,), n_boot=20, seed=3)
    assert entry["summary"] == ref
    assert entry["non_members"]["min"] == int((~keep[:, mask]).sum(axis=1).min())


def test_masks_and_group_arrays_agree(population):
    labels, keep, scores = population
    res = AttackResult("a", "loss", list(range(T)), scores, [], {})
    by_group = slice_tables({"a": res}, keep, {"class": labels}, fprs=(1e-2,), n_boot=0)
    by_mask = slice_tables({"a": res}, keep, {"leaky": labels == 0, "rest": labels != 0}, fprs=(1e-2,), n_boot=0)
    assert set(by_mask["slicings"]) == {"leaky", "rest"}
    assert _auc(by_mask, "leaky", "leaky") == _auc(by_group, "class", "class=0")
    rest = _auc(by_mask, "rest", "rest")["mean"]
    assert _auc(by_group, "class", "class=1")["mean"] < rest < _auc(by_group, "class", "class=0")["mean"]


def test_group_names_and_standard_slices(population):
    labels, keep, scores = population
    kind = np.zeros(N, dtype=np.int8)
    kind[:50] = 1
    slices, names = standard_slices(labels, kind=kind, group=np.zeros(N, dtype=int))
    assert set(slices) == {"class", "kind"}          # a single-valued group array adds nothing
    doc = slice_tables({"a": scores}, keep, slices, fprs=(1e-2,), n_boot=0, names=names)
    assert set(doc["slicings"]["kind"]) == {"ordinary", "mislabeled"}
    assert doc["slicings"]["kind"]["mislabeled"]["n"] == 50


def test_slices_without_members_or_non_members_are_reported(population):
    labels, keep, scores = population
    keep = keep.copy()
    keep[:, labels == 0] = True          # class 0: members only
    keep[:, labels == 1] = False         # class 1: non-members only
    keep[0, labels == 2] = True          # class 2: target 0 has no non-member there
    slices = {"class": labels, "nothing": np.zeros(N, dtype=bool)}
    doc = slice_tables({"a": scores, "b": -scores}, keep, slices, fprs=(1e-2, 1e-4), n_boot=10)
    rows = doc["slicings"]["class"]
    assert rows["class=0"]["status"] == "no non-members" and "summary" not in rows["class=0"]["attacks"]["a"]
    assert rows["class=1"]["status"] == "no members"
    part = rows["class=2"]["attacks"]["b"]
    assert part["status"] == "partial" and part["targets_used"] == [1, 2, 3]
    assert part["estimable"] == {"tpr@0.01": True, "tpr@0.0001": False}
    assert doc["slicings"]["nothing"]["nothing"] == {"n": 0, "status": "empty",
                                                    "attacks": {"a": {"status": "empty", "targets_used": []},
                                                                "b": {"status": "empty", "targets_used": []}}}
    console = Console(record=True, width=200)
    for table in render_slices(doc, metric="tpr@0.0001"):
        console.print(table)
    text = console.export_text()
    assert "no non-members" in text and "no members" in text and "†" in text and "*" in text


def test_bad_slices_raise_one_line_errors(population):
    labels, keep, scores = population
    with pytest.raises(SignalError, match="shape"):
        slice_tables({"a": scores}, keep, {"class": labels[:10]})
    with pytest.raises(SignalError, match="bool mask or an integer"):
        slice_tables({"a": scores}, keep, {"x": labels.astype(float)})
    with pytest.raises(SignalError, match="do not match"):
        slice_tables({"a": scores[:, :10]}, keep, {"class": labels})


def test_run_slices_adds_user_slicings(population):
    labels, keep, scores = population
    rare = np.zeros(N, dtype=bool)
    rare[::10] = True
    doc = run_slices({"a": scores}, keep, labels, extra={"rare": rare}, fprs=(1e-2,), n_boot=0)
    assert set(doc["slicings"]) == {"class", "rare"}
    assert doc["slicings"]["rare"]["rare"]["n"] == N // 10
