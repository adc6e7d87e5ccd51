"""Histograms of AMAL's learned per-example lambdas (AMAL paper Figures 2 and 7).

Figure 2 shows lambda_a - lambda_p (reliance on the guides over the training
label) for clean vs corrupted examples; Figure 7 shows lambda_a + lambda_p (the
example's total weight). With K guides, lambda_a is the sum of their columns.
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        fig.tight_layout()
        path = out_dir / f"amal_lambda_{quantity}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
