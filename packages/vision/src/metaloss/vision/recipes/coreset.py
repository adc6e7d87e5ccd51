"""Coresets from AMAL's lambdas (AMAL paper §5.1, Table 1).

A finished ``kd`` run's AMAL table says how much each training example was
weighted. This recipe samples a fraction of the training set without
replacement with probability proportional to a score of the example's
(lambda_p, lambda_a), and trains the student with CE only on each subset:

- ``lambda_sq``:    p ~ lambda_p^2 + lambda_a^2
- ``lambda_diff``:  p ~ |lambda_p - lambda_a|
- ``lambda_ratio``: p ~ lambda_a / lambda_p   (lambda_p floored at ``ratio_floor``)
- ``random``:       p uniform (the baseline)

With K guides, lambda_a is the sum of their columns. Data, schedule, student
and seeds are the source run's, so each subset is drawn from the very training
set the lambdas were learnt on.
"""

from __future__ import annotations

from functools import partial

import torch
from accelerate import Accelerator

from metaloss.core.checks import check_unit_interval
from metaloss.core.harness import Run, Selected, open_run, seed_everything

from ..distillation import fit_student, make_setting, scaled_epochs
from ..models import create_model

STRATEGIES = {  # the names are CORESET_STRATEGIES (the config schema's choices)
    "lambda_sq": lambda lp, la, floor: lp**2 + la**2,
    "lambda_diff": lambda lp, la, floor: (lp - la).abs(),
    "lambda_ratio": lambda lp, la, floor: la / lp.clamp_min(floor),
    "random": lambda lp, la, floor: torch.ones_like(lp),
}


def coreset_scores(table: torch.Tensor, strategy: str, ratio_floor: float = 1e-3) -> torch.Tensor:
    """Sampling scores of every row of an AMAL table (N, 1 + K) for ``strategy``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
    if not isinstance(table, torch.Tensor) or table.ndim != 2 or table.shape[1] < 2:
        shape = tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
        raise ValueError(f"table must be an AMAL lambda table (N, 1 + K) with K >= 1, got {shape}")
    return STRATEGIES[strategy](table[:, 0], table[:, 1:].sum(1), ratio_floor)


def sample_coreset(scores: torch.Tensor, fraction: float, *, seed: int) -> torch.Tensor:
    """round(fraction * N) distinct indices, drawn with probability proportional to ``scores``."""
    check_unit_interval("fraction", fraction, low_open=True)
    if scores.ndim != 1 or not bool(torch.isfinite(scores).all()) or bool((scores < 0).any()):
        raise ValueError("scores must be a 1-D tensor of finite, non-negative numbers")
    size = max(1, round(fraction * len(scores)))
    if int((scores > 0).sum()) < size:
        raise ValueError(
            f"only {int((scores > 0).sum())} examples have a positive score, fewer than the {size} "
            "to draw; this strategy cannot make a coreset of that size"
        )
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(scores.double(), size, replacement=False, generator=g).sort().values


def main(run: Run) -> None:
    cfg = run.config
    source = open_run(cfg["source_run"])
    src = source.config
    epochs = scaled_epochs(src)
    accelerator = Accelerator()
    for seed in src["seeds"]:
        lambdas = source.unit(cfg["source_method"], seed)
        if not lambdas.done:
            raise ValueError(f"{source.dir} has no finished {cfg['source_method']!r} unit for seed {seed}")
        table = lambdas.read_checkpoint()["amal"]["table"]
        setting = make_setting(src, seed)
        source_run = Run(run.dir, src, run.recipe)  # the source's settings, this run's folder
        for strategy in cfg["strategies"]:
            subset = sample_coreset(coreset_scores(table, strategy, cfg["ratio_floor"]), cfg["fraction"],
                                    seed=seed)
            unit = run.unit(strategy, seed)
            seed_everything(seed)
            model = create_model(src["student"]["arch"], setting.splits)
            unit.train_or_load(model, partial(_train_on_subset, source_run, accelerator, setting, unit, model,
                                              subset, epochs["student"]))


def _train_on_subset(run, accelerator, setting, unit, model, subset: torch.Tensor, epochs: int) -> Selected:
    """CE on the training examples in ``subset``; the result says how many of them were corrupted."""
    selected = fit_student(run, accelerator, setting, unit, model, [], "none", epochs, subset=subset)
    noisy = setting.noisy[subset]
    selected.metrics |= {"subset_size": len(subset), "subset_noisy_rate": float(noisy.float().mean())}
    return selected

