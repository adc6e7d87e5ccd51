"""The rule_denoising recipe end to end on the committed YouTube copy: every method, selection, resume."""

import json
import re

import torch

from metaloss.core.harness import Run
from metaloss.core.harness.config import resolve_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.weak_supervision.recipes.rule_denoising import main
from metaloss.weak_supervision_catalog import METHODS

TINY = ["datasets=[youtube]", "seeds=[0]", "optim.epochs=3", "amal.every=1", "gm.pretrain_epochs=5",
        "features.max_features=300", "amal.lr=[1.0,100.0]"]


def _config(*overrides):
    return resolve_config(discover_recipes()["rule_denoising"].load_defaults(), [*TINY, *overrides])


def test_every_method_trains_selects_on_validation_and_resumes_nothing(tmp_path):
    config = _config()
    run = Run(tmp_path / "run", config, "rule_denoising")
    main(run)
    run.finalize()
    results = {r["method"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    assert set(results) == {f"youtube-{m}" for m in (*METHODS, "amal_lr1", "amal_lr100")}
    # the amal row is the lambda learning rate with the better validation score
    candidates = (results["youtube-amal_lr1"], results["youtube-amal_lr100"])
    chosen = max(candidates, key=lambda r: r["val_score"])
    assert results["youtube-amal"]["test_score"] == chosen["test_score"]
    lr = float(chosen["method"].removeprefix("youtube-amal_lr"))
    assert results["youtube-amal"]["amal_lr"] == lr
    for method, r in results.items():
        assert 0.0 <= r["test_score"] <= 1.0 and r["best_epoch"] in (0, 1, 2)
        if method != "youtube-only_l":  # 3 epochs over L and U with the rules: well above chance
            assert r["test_score"] > 0.75, method
    # the logged validation scores pick the reported epoch
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for method, r in results.items():
        if method == "youtube-amal":
            continue  # chosen among the amal_lr units, checked above
        vals = [x["val_score"] for x in records if x.get("method") == method]
        assert r["val_score"] == max(vals) and vals.index(max(vals)) == r["best_epoch"]
    # AMAL moved its lambdas away from SPEAR's (1, 1) after its meta phases
    checkpoint = tmp_path / "run" / "checkpoints" / "youtube-amal_lr100-seed0.pt"
    table = torch.load(checkpoint, weights_only=False)["amal"]
    assert table["table"].shape == (1686, 2) and (table["table"] != 1.0).any()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}
    main(Run(tmp_path / "run", config, "rule_denoising"))
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "results").iterdir()}


def test_unknown_datasets_and_methods_are_refused_before_any_work(refused):
    bad = (("datasets=[cifar]", "datasets\\[0\\]: expected 'youtube', 'sms' or 'imdb'"),
           ("methods=[mixup]", "methods\\[0\\]: expected 'only_l'"),
           ("data.unlabeled=some", "data.unlabeled: expected 'all' or 'covered'"),
           ("amal.lr=[]", "amal.lr: expected at least 1 item, not 0"))
    for override, message in bad:
        assert re.search(message, refused("rule_denoising", override)), override


def test_unlabeled_covered_keeps_only_the_examples_some_rule_fires_on(tmp_path):
    from metaloss.weak_supervision.data import load_rule_dataset

    config = _config("methods=[amal]", "amal.lr=[1.0]", "optim.epochs=2", "data.unlabeled=covered")
    main(Run(tmp_path / "run", config, "rule_denoising"))
    unlabeled = load_rule_dataset("youtube", 0).unlabeled.weak_labels
    covered = int((unlabeled != -1).any(1).sum())
    assert 0 < covered < len(unlabeled)
    state = torch.load(tmp_path / "run" / "checkpoints" / "youtube-amal_lr1-seed0.pt", weights_only=False)
    assert state["amal"]["table"].shape == (100 + covered, 2)
