"""Labeling functions (LFs): the decorator, the applier and the checks on an LF matrix.

An LF maps one example (a text, or a record such as a dict) to a class in
``0..C-1`` or abstains with ``ABSTAIN = -1`` (snorkel's convention, also WRENCH's).
Applying m LFs to n examples gives the n x m int matrix every label model here
takes. ``check_lf_matrix`` is the one gate for such matrices: it catches the usual
mix-ups (0 used as abstain, SPEAR's "abstain = num_classes" convention passed in
unconverted, labels out of range, ragged rows) with a message that says what was
expected.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from metaloss.core.checks import check_int

ABSTAIN = -1


class LabelingFunction:
    """A named rule ``f(example) -> class | ABSTAIN``; ``label`` is the class it votes for, if one."""

    def __init__(self, name: str, fn: Callable, label: int | None = None,
                 preprocessors: Sequence[Callable] = ()):
        if not callable(fn):
            raise TypeError(f"a labeling function must be callable, got {type(fn).__name__}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a labeling function needs a non-empty name, got {name!r}")
        if label is not None:
            check_int(f"label of LF {name!r}", label, minimum=0)
        self.name, self.fn, self.label = name, fn, label
        self.preprocessors = tuple(preprocessors)

    def __call__(self, example) -> int:
        for pre in self.preprocessors:
            example = pre(example)
        out = self.fn(example)
        if out is None:
            return ABSTAIN
        if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, np.integer)):
            raise TypeError(f"LF {self.name!r} must return an int class or ABSTAIN (-1); it returned {out!r}")
        out = int(out)
        if self.label is not None and out not in (self.label, ABSTAIN):
            raise ValueError(f"LF {self.name!r} is declared to vote {self.label} but returned {out}")
        return out

    def __repr__(self) -> str:
        return f"LabelingFunction({self.name!r}, label={self.label})"


def labeling_function(name: str | None = None, *, label: int | None = None,
                      preprocessors: Sequence[Callable] = ()):
    """Decorator: ``@labeling_function(label=SPAM)`` turns ``f(example)`` into a ``LabelingFunction``.

    ``label`` declares the one class the LF votes for (CAGE and the LF statistics use
    it); the function then returns that class or ``ABSTAIN`` (``None`` also abstains).
    """
    if callable(name) and not isinstance(name, str):
        raise TypeError("use @labeling_function() with parentheses")

    def wrap(fn: Callable) -> LabelingFunction:
        if len(inspect.signature(fn).parameters) != 1:
            raise TypeError(f"a labeling function takes one argument (the example); {fn.__name__} does not")
        return LabelingFunction(name or fn.__name__, fn, label, preprocessors)

    return wrap


def apply_lfs(lfs: Sequence[LabelingFunction], examples, *, field: str | None = None) -> np.ndarray:
    """The n x m int matrix of ``lfs`` applied to ``examples``.

    ``examples``: a list (or any iterable) of examples, or a Hugging Face ``Dataset``;
    ``field`` picks one column of dict-like examples (``"text"`` for a Dataset of texts).
    """
    lfs = list(lfs)
    if not lfs:
        raise ValueError("apply_lfs needs at least one labeling function; got an empty set")
    for lf in lfs:
        if not isinstance(lf, LabelingFunction):
            raise TypeError(f"expected LabelingFunction objects (use @labeling_function), got {lf!r}")
    names = [lf.name for lf in lfs]
    if len(set(names)) != len(names):
        raise ValueError(f"labeling function names must be unique; duplicated: "
                         f"{sorted({n for n in names if names.count(n) > 1})}")
    rows = [[lf(_pick(ex, field)) for lf in lfs] for ex in _iterate(examples)]
    matrix = np.asarray(rows, dtype=np.int64).reshape(len(rows), len(lfs))
    return matrix


def check_lf_matrix(matrix, num_classes: int, *, name: str = "LF matrix") -> np.ndarray:
    """Validate an n x m LF output matrix (abstain = -1) and return it as int64.

    Raises ``ValueError`` for a ragged or non-2D matrix, non-integer entries, a
    value outside {-1, 0..C-1} (naming the likely convention mix-up), or no LFs.
    """
    check_int("num_classes", num_classes, minimum=2)
    if isinstance(matrix, (list, tuple)) and matrix and len({len(r) for r in matrix}) > 1:
        raise ValueError(f"{name} is ragged: its rows have lengths {sorted({len(r) for r in matrix})}")
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().cpu().numpy()
    array = np.asarray(matrix)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (examples x LFs), got shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no labeling functions (0 columns)")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer classes or -1 (abstain); it has non-integer values")
    elif array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    bad = (array < ABSTAIN) | (array >= num_classes)
    if bad.any():
        values = sorted(set(array[bad].tolist()))
        hint = ""
        if values == [num_classes]:
            hint = (f" (it looks like SPEAR's convention, abstain = num_classes = {num_classes}: "
                    "convert with from_spear_convention)")
        raise ValueError(f"{name} must hold -1 (abstain) or a class in 0..{num_classes - 1}; "
                         f"found {values}{hint}")
    if array.size and not (array == ABSTAIN).any() and (array == 0).mean() > 0.5:
        raise ValueError(
            f"{name} has no -1 but {100 * (array == 0).mean():.0f}% zeros: abstain must be -1, "
            "not 0 (snorkel/WRENCH convention); shift your labels, e.g. matrix - 1"
        )
    return array


def from_spear_convention(matrix, num_classes: int) -> np.ndarray:
    """SPEAR writes abstain as ``num_classes``; return the matrix with abstain = -1."""
    array = np.asarray(matrix).astype(np.int64)
    return np.where(array == num_classes, ABSTAIN, array)


def lf_classes(matrix: np.ndarray, num_classes: int) -> np.ndarray:
    """The one class each LF votes for, read off its outputs (CAGE's k_j).

    Raises if an LF votes for more than one class or never fires (its class is then unknown).
    """
    matrix = check_lf_matrix(matrix, num_classes)
    classes = []
    for j in range(matrix.shape[1]):
        votes = np.unique(matrix[:, j][matrix[:, j] != ABSTAIN])
        if len(votes) != 1:
            what = "never fires" if len(votes) == 0 else f"votes for several classes {votes.tolist()}"
            raise ValueError(f"LF {j} {what}; pass its class explicitly (lf_classes=...)")
        classes.append(int(votes[0]))
    return np.asarray(classes, dtype=np.int64)


def _iterate(examples) -> Iterable:
    if isinstance(examples, (str, bytes)):
        raise TypeError("examples must be a collection of examples, not a single string")
    return iter(examples)


def _pick(example, field: str | None):
    if field is None:
        return example
    try:
        return example[field]
    except (KeyError, TypeError, IndexError) as err:
        raise KeyError(f"example has no field {field!r}: {example!r:.80}") from err
