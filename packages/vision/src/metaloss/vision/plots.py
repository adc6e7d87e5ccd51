"""The pictures of the vision recipes.

- ``plot_lambda_histograms``: AMAL's learned per-example lambdas (AMAL paper Figures 2 and 7).
  Figure 2 shows lambda_a - lambda_p (reliance on the guides over the training label) for clean
  vs corrupted examples; Figure 7 shows lambda_a + lambda_p (the example's total weight). With K
  guides, lambda_a is the sum of their columns.
- ``plot_curves``: a per-epoch metric of every method, mean over seeds with a min-max band, one
  panel per metric (validation and test accuracy; a selection's precision, DML Figure 5).
- ``plot_weight_histograms``: learned example weights on corrupted vs clean training labels.
- ``plot_loss_surfaces``: a learned loss (L2T-DLN's DLN) over its 1-vs-1 pair (sigma(z_y), sigma(z_j))
  at several points of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from metaloss.core import trust_in_guides
from metaloss.core.checks import check_subset

QUANTITIES = {
    "trust": (trust_in_guides, r"$\lambda_a - \lambda_p$"),
    "total": (lambda t: t[:, 1:].sum(1) + t[:, 0], r"$\lambda_a + \lambda_p$"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(records: list[dict], panels: dict[str, str], path: Path, title: str) -> Path | None:
    """One panel per metric key in ``panels`` (key -> axis label), one line per method.

    ``records``: ``metrics.jsonl`` rows with ``method``, ``seed`` and ``epoch``; a resumed run may
    hold an epoch twice, and the later row wins. Methods without the metric are left out; nothing
    is written (None returned) if no method has any of them.
    """
    plt = _pyplot()
    latest = {(r["method"], r["seed"], r["epoch"]): r for r in records if "epoch" in r}
    methods = list(dict.fromkeys(m for m, _, _ in latest))
    if not any(key in r for r in latest.values() for key in panels):
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels.items()):
        for method in methods:
            by_epoch: dict[int, list[float]] = {}
            for (m, _, epoch), r in latest.items():
                if m == method and isinstance(r.get(key), (int, float)):
                    by_epoch.setdefault(epoch, []).append(r[key])
            if not by_epoch:
                continue
            epochs = sorted(by_epoch)
            values = [np.array(by_epoch[e]) for e in epochs]
            x = np.array(epochs) + 1
            line = ax.plot(x, [v.mean() for v in values], label=method)[0]
            ax.fill_between(x, [v.min() for v in values], [v.max() for v in values],
                            color=line.get_color(), alpha=0.15)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_weight_histograms(tables: dict[str, list[tuple[torch.Tensor, torch.Tensor]]], path: Path) -> Path:
    """One panel per method: histograms of its learned weights on corrupted vs clean training labels.

    ``tables``: method -> ``(weights (N,), corrupted (N,) bool)`` per seed, pooled over seeds;
    NaN weights (examples never weighted) are left out.
    """
    if not tables:
        raise ValueError("plot_weight_histograms needs at least one method's weights")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4), squeeze=False)
    for ax, (method, pairs) in zip(axes[0], tables.items()):
        weights = torch.cat([w for w, _ in pairs]).numpy()
        known = np.isfinite(weights)
        weights, corrupted = weights[known], torch.cat([c for _, c in pairs]).numpy()[known]
        bins = np.linspace(weights.min(), weights.max() + 1e-6, 40)
        for selected, text in ((~corrupted, "label clean"), (corrupted, "label corrupted")):
            if selected.any():
                ax.hist(weights[selected], bins=bins, alpha=0.6, density=True,
                        label=f"{text} (n={selected.sum()}, mean {weights[selected].mean():.3g})")
        ax.set_xlabel(f"{method}: example weight in the last epoch")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.suptitle("learned example weights (all seeds)")
    return _save(plt, fig, path)


def plot_loss_surfaces(surfaces: list[torch.Tensor], grid: torch.Tensor, path: Path, title: str,
                       panels: int = 4) -> Path:
    """``panels`` heat maps of a pair loss over (sigma(z_j), sigma(z_y)), evenly spaced through
    ``surfaces`` (the first is the start of training, then one per epoch); each (G, G) surface is
    indexed [sigma(z_y), sigma(z_j)] on ``grid`` (G,)."""
    if not surfaces:
        raise ValueError("plot_loss_surfaces needs at least one surface")
    plt = _pyplot()
    picks = sorted(set(np.linspace(0, len(surfaces) - 1, min(panels, len(surfaces))).round().astype(int)))
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 3.8), squeeze=False)
    ends = [float(grid[0]), float(grid[-1])]
    for ax, i in zip(axes[0], picks):
        image = ax.imshow(surfaces[i].numpy(), origin="lower", extent=ends + ends, aspect="auto",
                          cmap="viridis")
        ax.contour(grid.numpy(), grid.numpy(), surfaces[i].numpy(), levels=8, colors="white", linewidths=0.5)
        fig.colorbar(image, ax=ax)
        ax.set_xlabel(r"$\sigma(z_j)$, another class")
        ax.set_ylabel(r"$\sigma(z_y)$, the labelled class")
        ax.set_title("start of training" if i == 0 else f"after epoch {i}")
    fig.suptitle(title)
    return _save(plt, fig, path)


def plot_lambda_histograms(
    tables: list[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    out_dir: Path,
    quantities: tuple[str, ...] = ("trust", "total"),
    names: dict[str, tuple[str, str]] | None = None,
) -> list[Path]:
    """One PNG per quantity, one panel per mask, pooling the (table, masks) of every seed.

    ``masks`` maps a name (e.g. ``"label_noisy"``) to a bool tensor over the
    table's rows; ``names`` gives each mask's (true, false) legend labels.
    Returns the written paths.
    """
    plt = _pyplot()
    if not tables:
        raise ValueError("plot_lambda_histograms needs at least one (table, masks) pair")
    check_subset("quantities", quantities, QUANTITIES)
    mask_names = list(tables[0][1])
    names = names or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for quantity in quantities:
        fn, label = QUANTITIES[quantity]
        values = torch.cat([fn(t) for t, _ in tables]).numpy()
        bins = np.linspace(values.min(), values.max() + 1e-6, 40)
        fig, axes = plt.subplots(1, len(mask_names), figsize=(5 * len(mask_names), 4), squeeze=False)
        for ax, key in zip(axes[0], mask_names):
            mask = torch.cat([m[key] for _, m in tables]).numpy()
            yes, no = names.get(key, (key.replace("_", " "), f"not {key.replace('_', ' ')}"))
            for selected, text in ((~mask, no), (mask, yes)):
                if selected.any():
                    ax.hist(values[selected], bins=bins, alpha=0.6, density=True,
                            label=f"{text} (n={selected.sum()})")
            ax.set_xlabel(f"{label} at the end of training")
            ax.set_ylabel("density")
            ax.legend()
        fig.suptitle(f"AMAL: {label} per training example (all seeds)")
        paths.append(_save(plt, fig, out_dir / f"amal_lambda_{quantity}.png"))
    return paths
