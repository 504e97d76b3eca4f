"""The report a person signs off (``privaudit report``): it never disagrees with metrics.json --
checked number by number after every command that adds results (run, attack, memorization,
dynamics, audit) -- it opens with a verdict on the audited model (the target when there is one),
lists exactly the attacks metrics.json holds, explains only the markers it uses, and its risk
levels follow the documented criteria."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from privaudit.cli import app
from privaudit.evaluation.results import Estimate, MetricsDocument
from privaudit.report import format as fmt
from privaudit.report.verdict import attacker_sentence, grade, strongest
from privaudit.runtime.run import Layout, Run

BASE = {"seed": 0, "data": {"name": "digits", "n": 600},
        "population": {"n_models": 8, "models_per_group": 8},
        "model": {"arch": "mlp", "hidden": [64]},
        "training": {"epochs": 6, "batch_size": 32, "lr": 0.005, "workers": 1},
        "attacks": ["loss", "lira_offline"], "evaluation": {"targets": 2, "bootstrap": 10}}
# checkpoints (dynamics), canaries and a DP claim (the DP audit): every section but the target's
FULL = BASE | {"name": "full", "canaries": {"noise": 20},
               "training": BASE["training"] | {"checkpoints": [2, 4], "schedule": "constant",
                                               "dp": {"target_epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 1.0}}}
CORE = {"verdict", "utility", "attacks", "slices", "vulnerable", "configuration", "environment"}


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (args, result.output[-3000:], result.exception)
    return result.output


def write_config(folder: Path, doc: dict[str, Any]) -> Path:
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc | {"out": str(folder / "runs")}))
    return path


# -- reading a report back ---------------------------------------------------------------------------

class Report(HTMLParser):
    """What a report shows: section ids, tables (cells with their attributes and text), figures,
    images, the verdict's attributes and facts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.tables: list[dict[str, Any]] = []
        self.figures: list[dict[str, str]] = []
        self.images = 0
        self.verdict: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self._table: dict[str, Any] | None = None
        self._cell: list | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "body":
            self.body = a
        elif tag == "table":
            self._table = {"attrs": a, "rows": [], "section": self.sections[-1] if self.sections else None}
            self.tables.append(self._table)
        elif tag == "tr" and self._table is not None:
            self._table["rows"].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = [a, ""]
            self._table["rows"][-1].append(self._cell)
        elif tag == "figure":
            self.figures.append(a)
        elif tag == "img":
            self.images += 1
        elif tag == "div" and "verdict" in a.get("class", "").split():
            self.verdict = a

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1] += data

    def table(self, **attrs: str) -> dict[str, Any] | None:
        return next((t for t in self.tables if all(t["attrs"].get(k.replace("_", "-")) == v
                                                    for k, v in attrs.items())), None)

    def facts(self) -> dict[str, str]:
        """The verdict's facts (its key-value table)."""
        t = next(t for t in self.tables if t["section"] == "verdict")
        return {row[0][1]: row[1][1] for row in t["rows"]}


def read_report(run: Run, epoch: int | None = None) -> Report:
    final = epoch is None or epoch == run.config().training.epochs
    return Report(run.read_text(Layout.report if final else Layout.epoch_report(epoch)))


def check_attack_table(table: dict[str, Any], doc: dict[str, Any]) -> None:
    """Every number of every cell is metrics.json's, rounded as the console rounds it, and the
    full-precision values behind the cell are metrics.json's exactly."""
    many = len(doc["targets"]) > 1
    rows = table["rows"][1:]
    assert [r[0][1] for r in rows] == list(doc["attacks"]), "the table lists exactly metrics.json's attacks"
    for row in rows:
        name = row[0][1]
        for attrs, text in row[1:]:
            assert attrs["data-attack"] == name
            est = doc["attacks"][name]["summary"][attrs["data-metric"]]
            if est.get("unresolved"):
                assert text == f"needs ≥ {est['needs_nonmembers']} non-members" and "data-mean" not in attrs
                continue
            f, d = (100, 2) if attrs["data-metric"].startswith("tpr@") else (1, 3)
            shown = [est["mean"], est["std"]] if many else [est["mean"]]
            shown += [est["lo"], est["hi"]] if "lo" in est else []
            assert re.findall(r"-?\d+\.\d+", text) == [f"{v * f:.{d}f}" for v in shown], (name, text, est)
            assert float(attrs["data-mean"]) == est["mean"] and float(attrs["data-std"]) == est["std"]
            if "lo" in est:
                assert (float(attrs["data-lo"]), float(attrs["data-hi"])) == (est["lo"], est["hi"])
            assert (fmt.TIES in text) == bool(est.get("tied"))


def check_verdict(page: Report, doc: dict[str, Any]) -> None:
    """The verdict's attack is the strongest at the lowest FPR some attack resolves, with its TPR."""
    v = page.verdict
    fprs = sorted({k for a in doc["attacks"].values() for k in a["summary"] if k.startswith("tpr@")},
                  key=lambda k: float(k[4:]))
    resolved = lambda k: {n: a["summary"][k]["mean"] for n, a in doc["attacks"].items()
                          if not a["summary"][k].get("unresolved")}
    key = next(k for k in fprs if resolved(k))
    assert v["data-metric"] == key and float(v["data-tpr"]) == resolved(key)[v["data-attack"]]
    assert resolved(key)[v["data-attack"]] == max(resolved(key).values())
    est = Estimate.from_json(doc["attacks"][v["data-attack"]]["summary"][key])
    assert v["data-level"] == grade(est, float(key[4:])).level


def check_report(run: Run, epoch: int | None = None) -> Report:
    """The report of ``epoch`` against the metrics.json files next to it."""
    cfg = run.config()
    epoch = epoch or cfg.training.epochs
    page = read_report(run, epoch)
    doc = run.load_json(Layout.epoch_metrics(epoch))
    assert CORE <= set(page.sections) and len(page.sections) == len(set(page.sections))
    check_attack_table(page.table(data_source="population"), doc)
    target = run.load_json(Layout.target_metrics) if "target" in page.sections else None
    if target is not None:
        check_attack_table(page.table(data_source="target"), target)
    check_verdict(page, target or doc)
    listed = page.table(**{"class": "attack-list"})
    assert [r[0][1] for r in listed["rows"][1:]] == list(doc["attacks"])
    for figure in (f for f in page.figures if f.get("data-figure") in ("roc", "score-quantiles")):
        assert set(figure["data-attacks"].split(",")) == set(doc["attacks"])
    u = doc["utility"]
    cells = [c[1] for r in next(t for t in page.tables if t["section"] == "utility")["rows"] for c in r]
    assert f"{100 * u['train_accuracy']['mean']:.1f}% [{100 * u['train_accuracy']['min']:.1f}, " \
           f"{100 * u['train_accuracy']['max']:.1f}]" in cells
    return page


def written(run: Run) -> tuple[int, int]:
    """When and as which file the report was last written (every write replaces the file)."""
    st = run.path(Layout.report).stat()
    return st.st_ino, st.st_mtime_ns


# -- a run through every command -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("report")
    cli("run", write_config(folder, FULL))
    return Run.open(folder / "runs" / "full")


def test_the_report_agrees_with_metrics_json_after_every_command(full_run):
    run = full_run
    page = check_report(run)
    assert "not audited" in page.facts()["differential privacy"]     # a DP claim, no audit yet

    before = written(run)
    cli("attack", run.root, "--attacks", "lira_online")
    assert written(run) != before
    page = check_report(run)
    doc = run.load_json(Layout.metrics)
    assert list(doc["attacks"]) == ["loss", "lira_offline", "lira_online"]   # the run's two, then the new one
    sources = {r[0][1]: r[-1][1] for r in page.table(**{"class": "attack-list"})["rows"][1:]}
    assert sources == {"loss": "config.yaml", "lira_offline": "config.yaml", "lira_online": "added by privaudit attack"}

    cli("attack", run.root, "--attacks", "loss", "--epoch", "4")            # a checkpoint's own report
    check_report(run, epoch=4)

    for command, section in ((["memorization", "--bootstrap", "10", "--repeats", "1"], "memorization"),
                             (["dynamics", "--bootstrap", "10"], "dynamics"),
                             (["audit", "--samples", "canaries"], "dp-audit")):
        before = written(run)
        cli(command[0], run.root, *command[1:])
        assert written(run) != before, f"{command[0]} did not rebuild the report"
        page = check_report(run)
        assert section in page.sections
    audit = run.load_json(Layout.audit)
    bound = audit["bounds"][audit["primary_bound"]]
    dp = page.facts()["differential privacy"]
    assert f"ε ≥ {bound['eps_lb']:.3f}" in dp and f"claimed ε = {audit['claimed_epsilon']:.3f}" in dp
    order = [s for s in page.sections if s in ("verdict", "attacks", "memorization", "dynamics", "dp-audit",
                                               "configuration", "environment")]
    assert order == ["verdict", "attacks", "memorization", "dynamics", "dp-audit", "configuration", "environment"]
    assert "seconds" in run.stage_done("train") and "cpu" in page.tables[-1]["rows"][3][1][1]   # environment


def test_the_report_command_rebuilds_and_refuses_pdf_without_a_browser(full_run, monkeypatch):
    before = written(full_run)
    cli("report", full_run.root)
    assert written(full_run) != before
    check_report(full_run)
    monkeypatch.setattr("privaudit.report.pdf.shutil.which", lambda name: None)
    result = CliRunner().invoke(app, ["report", str(full_run.root), "--pdf"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "chromium, chromium-browser, google-chrome" in lines[0], result.output


# -- a user's target model -------------------------------------------------------------------------------

def user_target(folder: Path, doc: dict[str, Any]) -> dict[str, str]:
    """The ``target:`` section of a "user's" MLP trained on a random half of the pool privaudit
    prepares for ``doc`` (another seed than the population's), saved as safetensors."""
    import torch
    from safetensors.torch import save_file

    from privaudit.config import parse_config
    from privaudit.models.architectures import ArchSpec
    from privaudit.stages.prepare import prepare
    from privaudit.training.recipe import Recipe
    from privaudit.training.trainer import steps_per_epoch, train_group

    cfg = parse_config(doc | {"out": str(folder / "runs")})
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
    x, y = run.pool()
    members = np.random.default_rng(5).random(len(y)) < 0.5
    group = train_group(torch.from_numpy(x), torch.from_numpy(y), members[None], [0], spec=ArchSpec("mlp", (64,)),
                        recipe=Recipe(epochs=30, batch_size=32, lr=0.005), n_classes=10, root_seed=999,
                        steps=steps_per_epoch(members[None], 32))
    save_file(next(iter(group.models())).state_dict(), str(folder / "model.safetensors"))
    np.save(folder / "members.npy", members)
    return {"model": str(folder / "model.safetensors"), "members": str(folder / "members.npy")}


OWN = BASE | {"name": "own", "data": {"name": "digits"}}     # a target's members refer to the whole dataset


@pytest.fixture(scope="module")
def target_run(tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("own")
    cli("run", write_config(folder, OWN | {"target": user_target(folder, OWN)}))
    return Run.open(folder / "runs" / "own")


def test_the_verdict_and_exposed_samples_are_the_target_models(target_run):
    run = target_run
    page = check_report(run)
    assert "target" in page.sections
    doc = run.load_json(Layout.target_metrics)
    attack = page.verdict["data-attack"]
    assert float(page.verdict["data-tpr"]) == doc["attacks"][attack]["summary"][page.verdict["data-metric"]]["mean"]
    assert "training recipe" in page.facts()                  # the population, one line
    table = next(t for t in page.tables if t["section"] == "vulnerable")
    header = [c[1] for c in table["rows"][0]]
    rows = table["rows"][1:]
    scores = run.load_npy(Layout.target_scores(attack))
    members = run.load_npy(Layout.target_members)
    shown = [int(r[header.index("sample")][1]) for r in rows]
    assert shown == list(np.argsort(-scores, kind="stable")[:len(rows)])       # the target's, not model 0's
    assert [r[header.index("membership")][1] for r in rows] == \
        ["member" if members[i] else "non-member" for i in shown]
    assert page.images >= len(rows) + 3          # a thumbnail per sample, ROC, scores, the target's ROC


# -- the pieces -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tpr, level", [
    (Estimate(0.012, 0.0, 0.004, 0.016), "low"),            # includes chance, cannot exceed 2x
    (Estimate(0.02, 0.0, 0.0, 0.06), "inconclusive"),       # includes chance, could be 6x
    (Estimate(0.015, 0.0, 0.0105, 0.02), "low"),            # excludes chance, 1.5x
    (Estimate(0.05, 0.0, 0.03, 0.07), "moderate"),
    (Estimate(0.2, 0.0, 0.1, 0.3), "high"),
    (Estimate(0.6, 0.0, 0.5, 0.7), "severe"),
    (Estimate(0.6, 0.0), "severe"),                         # no interval: graded on the estimate, said so
])
def test_risk_levels_follow_the_documented_criteria(tpr, level):
    risk = grade(tpr, 0.01)
    assert risk.level == level
    assert risk.ratio == pytest.approx(tpr.mean / 0.01)
    assert (risk.excludes_chance is None) == (tpr.lo is None)


def _doc(tprs: dict[str, dict[str, Estimate]], n_nonmembers: int = 500) -> MetricsDocument:
    from privaudit.evaluation.results import AttackMetrics

    attacks = {k: AttackMetrics(k, "phi", [0, 1], {}, [], {"auc": Estimate(0.6, 0.01, 0.5, 0.7)} | s, n_nonmembers)
               for k, s in tprs.items()}
    return MetricsDocument("r", 6, 8, [0, 1], "loo", "strict", "95%", attacks)


def test_the_verdict_uses_the_strongest_attack_at_the_lowest_resolvable_fpr():
    doc = _doc({"a": {"tpr@0.001": Estimate.unresolved_at(1000), "tpr@0.01": Estimate(0.05, 0.01, 0.03, 0.07)},
                "b": {"tpr@0.001": Estimate.unresolved_at(1000), "tpr@0.01": Estimate(0.08, 0.01, 0.05, 0.1)}})
    op = strongest(doc)
    assert (op.attack, op.key, op.fpr) == ("b", "tpr@0.01", 0.01)
    assert attacker_sentence(op) == ("An attacker who accepts 10 false alarms per 1,000 non-members identifies 80 "
                                     "of every 1,000 training samples (95% interval 50 to 100); guessing identifies 10.")


def test_the_sentence_counts_per_thousand_and_clips_the_interval_to_a_rate():
    op = strongest(_doc({"a": {"tpr@0.001": Estimate(0.0123, 0.01, -0.02, 0.031)}}))
    assert attacker_sentence(op).startswith("An attacker who accepts 1 false alarm per 1,000 non-members "
                                            "identifies 12 of every 1,000 training samples (95% interval 0 to 31)")
    op = strongest(_doc({"a": {"tpr@1e-05": Estimate(0.004, 0.0, 0.002, 0.006)}}))
    assert "1 false alarm per 100,000 non-members identifies 400 of every 100,000" in attacker_sentence(op)


def test_footnotes_explain_only_the_markers_used():
    plain = _doc({"a": {"tpr@0.01": Estimate(0.05, 0.01, 0.03, 0.07)}})
    assert fmt.TIES_NOTE not in fmt.attack_table(plain, "population").caption
    tied = _doc({"a": {"tpr@0.01": Estimate(0.05, 0.01, 0.03, 0.07, tied=True)}})
    table = fmt.attack_table(tied, "population")
    assert fmt.TIES_NOTE in table.caption and table.rows[0][-1].endswith("(ties)")
    entry = lambda status, est: {"status": status, "summary": {"tpr@0.01": est}, "estimable": {"tpr@0.01": True}}
    rows = {"class=0": {"n": 10, "attacks": {"a": entry("ok", {"mean": 0.1, "lo": 0.0, "hi": 0.2})}}}
    caption = fmt.slice_table("class", rows, "tpr@0.01").caption
    assert caption == "mean over targets [95% bootstrap CI]"
    rows["class=1"] = {"n": 10, "attacks": {"a": entry("partial", {"mean": 0.1, "lo": 0.0, "hi": 0.2, "tied": True})}}
    caption = fmt.slice_table("class", rows, "tpr@0.01").caption
    assert "* some targets left out" in caption and fmt.TIES_NOTE in caption and "†" not in caption


def test_tables_escape_what_they_show():
    t = fmt.TextTable("<b>title</b>", ["a", "b"])
    t.add_row("<script>alert(1)</script>", "1.0", attrs=[{"data-x": '"><img>'}, {}])
    html = t.html()
    assert "<script>" not in html and "&lt;script&gt;" in html and '"><img>' not in html
    assert "&lt;b&gt;title&lt;/b&gt;" in html


def test_the_templates_ship_with_the_package():
    import tomllib

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert any(d.startswith("jinja2") for d in data["project"]["dependencies"])
    patterns = data["tool"]["setuptools"]["package-data"]["privaudit.report"]
    templates = Path(fmt.__file__).parent / "templates"
    files = sorted(p.name for p in templates.iterdir())
    assert files and all(any(Path(f).match(p.split("/")[-1]) for p in patterns) for f in files), (files, patterns)
