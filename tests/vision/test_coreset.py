"""Coresets from AMAL's lambdas (AMAL Table 1): scores, sampling, and the recipe on a tiny kd run."""

import json

import pytest
import torch

from metaloss.core.harness.launch import main as launch
from metaloss.vision.data import fixture_root
from metaloss.vision.recipes.coreset import coreset_scores, sample_coreset

from .test_kd_recipe import TINY


def test_scores_are_the_papers_closed_forms():
    table = torch.tensor([[0.1, 0.9], [0.5, 0.5], [0.0, 0.3], [0.2, 0.1]])
    torch.testing.assert_close(coreset_scores(table, "lambda_sq"), torch.tensor([0.82, 0.5, 0.09, 0.05]))
    torch.testing.assert_close(coreset_scores(table, "lambda_diff"), torch.tensor([0.8, 0.0, 0.3, 0.1]))
    torch.testing.assert_close(coreset_scores(table, "lambda_ratio", ratio_floor=0.01),
                               torch.tensor([9.0, 1.0, 30.0, 0.5]))
    torch.testing.assert_close(coreset_scores(table, "random"), torch.ones(4))
    # K = 2 guides: lambda_a is their sum
    two_guides = torch.tensor([[0.1, 0.3, 0.4]])
    torch.testing.assert_close(coreset_scores(two_guides, "lambda_diff"), torch.tensor([0.6]))
    with pytest.raises(ValueError, match="strategy must be one of"):
        coreset_scores(table, "loss")
    with pytest.raises(ValueError, match=r"\(N, 1 \+ K\)"):
        coreset_scores(table[:, :1], "random")


def test_sampling_is_seeded_distinct_and_follows_the_scores():
    scores = torch.cat([torch.full((500,), 1.0), torch.full((500,), 9.0), torch.zeros(100)])
    a = sample_coreset(scores, 0.2, seed=3)
    assert len(a) == 220 and len(set(a.tolist())) == 220
    assert torch.equal(a, sample_coreset(scores, 0.2, seed=3))
    assert not torch.equal(a, sample_coreset(scores, 0.2, seed=4))
    assert (a < 1000).all()  # a zero score is never drawn
    heavy = int((a >= 500).sum())
    assert heavy > 4 * (len(a) - heavy)  # 9x the score: far more often drawn
    with pytest.raises(ValueError, match="fewer than the"):
        sample_coreset(torch.tensor([1.0, 0.0, 0.0, 0.0]), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
        sample_coreset(scores, 0.0, seed=0)


@pytest.mark.slow
def test_coreset_recipe_on_a_finished_kd_run(tmp_path):
    base = [*TINY, f"data.root={fixture_root()}", f"output_dir={tmp_path}", "methods=[amal]"]
    assert launch(["kd", *base, "--run-dir", str(tmp_path / "kd")]) == 0
    args = ["coreset", f"source_run={tmp_path / 'kd'}", "fraction=0.25", "--run-dir", str(tmp_path / "cs")]
    assert launch(args) == 0
    results = {r["method"]: r for r in json.loads((tmp_path / "cs" / "results.json").read_text())}
    assert set(results) == {"lambda_sq", "lambda_diff", "lambda_ratio", "random"}
    for r in results.values():
        assert r["subset_size"] == 30  # 25% of the 120 training images
        assert 0.0 <= r["test_acc"] <= 1.0 and 0.0 <= r["subset_noisy_rate"] <= 1.0
    # a source that is not a run folder is refused before any work (tests/vision/test_recipe_catalog.py)
    assert launch(["coreset", f"source_run={tmp_path / 'nowhere'}", "--run-dir", str(tmp_path / "cs2")]) == 2
    assert not (tmp_path / "cs2").exists()
