"""What a finished run reports: ``results.json``, the ``summary.md`` table and PNG plots.

Everything here reads the run folder's files (``results/*.json``,
``metrics.jsonl``), so a report can be rebuilt from a run folder alone.
Only numpy is imported at module level; matplotlib is imported when plotting,
because ``metaloss-core`` without the ``[launch]`` extra does not ship it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..optional import import_extra

# Keys of a metrics record that identify it rather than measure something.
_RECORD_KEYS = ("method", "seed", "epoch", "time", "step")
# A summary cell's precision: significant digits of a column's largest value, and
# the most decimals fixed point may use before the column switches to an exponent.
_SIGNIFICANT = 4
_MAX_DECIMALS = 6


def collect_results(run_dir: str | Path) -> list[dict]:
    """The per-unit results of a run (``results/*.json``), sorted by method then seed."""
    results_dir = Path(run_dir) / "results"
    results = [json.loads(path.read_text()) for path in results_dir.glob("*.json")]
    return sorted(results, key=lambda r: (str(r.get("method")), _seed_key(r.get("seed"))))


def _seed_key(seed) -> tuple:
    # Numeric seeds sort as numbers (seed2 before seed10); anything else after them.
    return (0, seed, "") if isinstance(seed, int) else (1, 0, str(seed))


def summary_table(results: list[dict], metrics: list[str] | None = None) -> str:
    """A Markdown table: one row per method, its count ``n``, one ``mean ± std`` cell per metric.

    Args:
        results: unit results, each a dict with a ``"method"`` key. Methods keep
            the order in which they first appear; ``n`` counts a method's results.
        metrics: the columns; by default every numeric key except ``"seed"``.
    The std is the sample std over seeds (ddof=1); a single value prints alone.
    Every cell of a column has the same precision, chosen from the column's
    means and stds (see ``_column_format``): four significant digits of the
    largest, at most one decimal where every value is an int (an epoch count),
    none where every mean and std is whole, a shared exponent below 1e-3.
    A cell with no value prints ``-``::

        | method | n | best_epoch | val_acc |
        |---|---|---|---|
        | ce | 5 | 18.6 ± 9.4 | 0.9557 ± 0.0077 |
        | kd | 1 | 12.0 | 0.9612 |
    """
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise TypeError(f"results must be a list of dicts, got {type(results).__name__}")
    missing = [i for i, r in enumerate(results) if "method" not in r]
    if missing:
        raise ValueError(f"every result needs a 'method' key; results at {missing} have none")
    metrics = _numeric_keys(results) if metrics is None else _check_metrics(metrics)
    methods = list(dict.fromkeys(str(r["method"]) for r in results))
    rows = {m: [r for r in results if str(r["method"]) == m] for m in methods}
    columns = [_column([[r[metric] for r in rows[m] if _is_number(r.get(metric))] for m in methods])
               for metric in metrics]
    lines = [
        "| " + " | ".join(["method", "n", *metrics]) + " |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for i, method in enumerate(methods):
        lines.append("| " + " | ".join([method, str(len(rows[method])), *(c[i] for c in columns)]) + " |")
    return "\n".join(lines) + "\n"


def _mean_and_std(values: list[float]) -> tuple[float, float | None] | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0]), None
    with np.errstate(invalid="ignore"):  # an inf among the values: nan std, printed as such
        return float(np.mean(values)), float(np.std(values, ddof=1))


def _column(values_by_method: list[list[float]]) -> list[str]:
    """The cells of one column, one per method, all printed with the column's format."""
    stats = [_mean_and_std(values) for values in values_by_method]
    counts = all(isinstance(v, int) for values in values_by_method for v in values)
    spec = _column_format([x for stat in stats if stat for x in stat if x is not None], counts)
    return [_cell(stat, spec) for stat in stats]


def _column_format(numbers: list[float], counts: bool = False) -> str:
    """The format spec shared by a column's cells, given its means and stds.

    Four significant digits of the largest finite magnitude; none when every
    number is whole; at most one decimal for ``counts`` (a mean of epochs needs
    no more); scientific notation where fixed point would need more than
    ``_MAX_DECIMALS`` decimals (a column of 1e-6 learning rates).
    """
    finite = [float(x) for x in numbers if math.isfinite(x)]
    if all(x.is_integer() for x in finite):
        return ".0f"
    # not all whole, so some finite number is non-zero and its log is defined
    decimals = _SIGNIFICANT - 1 - math.floor(math.log10(max(abs(x) for x in finite)))
    if decimals > _MAX_DECIMALS:
        return f".{_SIGNIFICANT - 1}e"
    decimals = max(decimals, 0)
    return f".{min(decimals, 1) if counts else decimals}f"


def _cell(stat: tuple[float, float | None] | None, spec: str) -> str:
    if stat is None:
        return "-"
    mean, std = stat
    return f"{mean:{spec}}" if std is None else f"{mean:{spec}} ± {std:{spec}}"


def _check_metrics(metrics) -> list[str]:
    if not isinstance(metrics, (list, tuple)) or not all(isinstance(m, str) for m in metrics):
        raise TypeError(f"metrics must be a list of str or None, got {metrics!r}")
    return list(metrics)


def _is_number(value) -> bool:
    # bool is an int subclass, but a flag is not something to average.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_keys(records: Iterable[dict], exclude: Iterable[str] = ("seed",)) -> list[str]:
    exclude = set(exclude)
    keys = (k for r in records for k, v in r.items() if k not in exclude and _is_number(v))
    return list(dict.fromkeys(keys))


def read_metrics(metrics_jsonl: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a missing file gives []."""
    path = Path(metrics_jsonl)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A run killed mid-write leaves a truncated last line; the rest is valid.
            continue
    return records


def metric_series(records: Iterable[dict]) -> dict[str, dict[str, tuple[list, list, list]]]:
    """Per metric and method: ``(epochs, mean over seeds, std over seeds)``.

    Only records with ``method``, ``seed`` and ``epoch`` count. When several
    share ``(method, seed, epoch)`` the last one wins: a resumed run re-logs
    the epoch it was killed in. The std is ddof=1 where an epoch has more than
    one seed, else 0.
    """
    latest: dict[tuple, dict] = {}
    for record in records:
        if all(k in record for k in ("method", "seed", "epoch")):
            latest[(str(record["method"]), record["seed"], record["epoch"])] = record
    series: dict[str, dict[str, tuple[list, list, list]]] = {}
    for key in _numeric_keys(latest.values(), exclude=_RECORD_KEYS):
        by_method: dict[str, dict[int, list[float]]] = {}
        for (method, _seed, epoch), record in latest.items():
            if _is_number(record.get(key)):
                by_method.setdefault(method, {}).setdefault(epoch, []).append(record[key])
        series[key] = {method: _mean_std(per_epoch) for method, per_epoch in by_method.items()}
    return series


def _mean_std(per_epoch: dict[int, list[float]]) -> tuple[list, list, list]:
    epochs = sorted(per_epoch)
    means = [float(np.mean(per_epoch[e])) for e in epochs]
    stds = [float(np.std(per_epoch[e], ddof=1)) if len(per_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, stds


def plot_metrics(metrics_jsonl: str | Path, out_dir: str | Path) -> list[Path]:
    """One PNG per metric in ``out_dir``: x = epoch, a line per method (mean over seeds, ±std).

    Returns the written paths; writes nothing when there is nothing to plot.
    """
    series = metric_series(read_metrics(metrics_jsonl))
    if not series:
        return []
    matplotlib = import_extra("matplotlib")
    matplotlib.use("Agg")  # files only: no display on servers and CI
    plt = import_extra("matplotlib.pyplot")
    integer_ticks = import_extra("matplotlib.ticker").MaxNLocator(integer=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, by_method in series.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, (epochs, means, stds) in by_method.items():
            means, stds = np.asarray(means), np.asarray(stds)
            ax.plot(epochs, means, label=method)
            ax.fill_between(epochs, means - stds, means + stds, alpha=0.2)
        ax.xaxis.set_major_locator(integer_ticks)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(f"{key} (mean ± std over seeds)")
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{_file_stem(key)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def _file_stem(key: str) -> str:
    # Metric names like "loss/train" must not create folders.
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def write_report(run_dir: str | Path, recipe: str, metrics: list[str] | None = None,
                 order: list[tuple[str, int]] | None = None) -> str:
    """Write ``results.json``, ``summary.md`` and ``plots/`` of a run; return the table.

    ``order`` lists ``(method, seed)`` pairs in the order the recipe asked for
    them, so the table's rows follow the recipe's order rather than the alphabet.
    """
    run_dir = Path(run_dir)
    results = collect_results(run_dir)
    if order:
        rank = {pair: i for i, pair in enumerate(order)}
        results.sort(key=lambda r: rank.get((r.get("method"), r.get("seed")), math.inf))
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = summary_table(results, metrics)
    (run_dir / "summary.md").write_text(f"# {recipe}: {run_dir}\n\n{table}")
    plot_metrics(run_dir / "metrics.jsonl", run_dir / "plots")
    return table
