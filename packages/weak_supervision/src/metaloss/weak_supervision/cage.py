"""CAGE, the discrete-LF graphical label model (Chatterjee, Ramakrishnan, Sarawagi, AAAI 2020), and
majority vote.

Conventions. ``weak_labels`` is the n x m int LF matrix of ``labeling.py``: entry
``l_ij`` is a class in ``0..C-1`` or ``ABSTAIN = -1``. Every LF j votes for one
class ``k_j`` (``lf_classes``, e.g. read off a matrix with ``labeling.lf_classes``);
CAGE only uses whether LF j fires on example i, ``m_ij = [l_ij != -1]``, and a
matrix in which LF j votes for a class other than ``k_j`` is refused.

The model (CAGE eq. 1, discrete LFs only; the continuous-score factor of eqs. 2-3
is left out) has one parameter per class and LF, ``theta`` (C x m)::

    P(l_i, y) = exp(sum_j theta[y, j] m_ij) / Z,   Z = sum_y prod_j (1 + exp(theta[y, j]))

(eq. 4 is this Z: the sum over all 2^m fire patterns factorises per LF). Hence
``P(y | l_i) = softmax_y(theta @ m_i)``; an example on which no LF fires gets the
uniform posterior. Training (eq. 6) maximises the likelihood: the unsupervised term
is ``-log sum_y P(l_i, y)`` on unlabeled examples and, on labeled ones, the
normalised-over-y term ``-log P(y_i | l_i)`` (a cross-entropy). The quality guide
(eq. 9) ties LF j's precision ``P(y = k_j | l_j fires)`` to a user guess ``q_j``::

    R = -sum_j [q_j log P(y = k_j | l_j fires) + (1 - q_j) log(1 - P(y = k_j | l_j fires))],
    P(y, l_j fires) ∝ exp(theta[y, j]) prod_{j' != j} (1 + exp(theta[y, j'])).

``fit`` minimises ``mean unsupervised NLL + mean supervised NLL + quality_weight * R``
(means over examples, R summed over LFs, so the guides keep their pull however many
examples there are; ``quality_weight=0`` drops them) full-batch with Adam. The
defaults (300 epochs, lr 0.05) let full-batch training converge: SPEAR's lr 0.01 for
100 epochs leaves ``theta`` close to its initial value when every epoch is one step.
``theta`` starts at 1 on ``(k_j, j)`` and 0 elsewhere, so the unsupervised objective
is not symmetric in the classes. Everything runs in float64 and in log space
(``logsumexp``, ``softplus``). ``CAGE`` is a ``torch.nn.Module`` (``forward`` gives
``log P(y | l)``) so its NLL terms can join a joint objective with a feature model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from metaloss.core.checks import check_choice, check_int

from .labeling import ABSTAIN, check_lf_matrix

__all__ = [
    "CAGE",
    "cage_log_joint",
    "cage_log_partition",
    "cage_log_posterior",
    "cage_quality_log_precision",
    "majority_vote",
]

_TIE_BREAKS = ("random", "abstain")


# ---------------------------------------------------------------------------------------------
# The model as pure functions of theta (C x m) and a fire mask (n x m, 0/1): what gradcheck sees.


def cage_log_partition(theta: torch.Tensor) -> torch.Tensor:
    """``log Z = log sum_y prod_j (1 + exp(theta[y, j]))`` (CAGE eq. 4), a scalar."""
    return torch.logsumexp(F.softplus(theta).sum(dim=1), dim=0)


def cage_log_joint(theta: torch.Tensor, fire: torch.Tensor) -> torch.Tensor:
    """``log P(l_i, y)`` for every example and class, (n, C)."""
    return fire @ theta.T - cage_log_partition(theta)


def cage_log_posterior(theta: torch.Tensor, fire: torch.Tensor) -> torch.Tensor:
    """``log P(y | l_i)``, (n, C): a log-softmax over y of ``theta @ m_i`` (Z cancels)."""
    return torch.log_softmax(fire @ theta.T, dim=1)


def cage_quality_log_precision(theta: torch.Tensor,
                               lf_classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log P(y = k_j | l_j fires), log(1 - P(y = k_j | l_j fires)))``, each (m,).

    ``P(y, l_j fires) ∝ exp(theta[y, j]) prod_{j' != j} (1 + exp(theta[y, j']))``: the
    other LFs are summed out. Both logs are computed without forming ``1 - p``.
    """
    soft = F.softplus(theta)  # log(1 + exp(theta)), (C, m)
    scores = theta + soft.sum(dim=1, keepdim=True) - soft  # log of the unnormalised P(y, l_j fires)
    log_norm = torch.logsumexp(scores, dim=0)  # (m,)
    own = F.one_hot(lf_classes, theta.shape[0]).T.bool()  # (C, m): y == k_j
    log_own = scores.gather(0, lf_classes.view(1, -1)).squeeze(0)
    log_other = torch.logsumexp(scores.masked_fill(own, float("-inf")), dim=0)
    return log_own - log_norm, log_other - log_norm


# ---------------------------------------------------------------------------------------------


class CAGE(torch.nn.Module):
    """CAGE label model over m discrete LFs and C classes (see the module docstring).

    ``lf_classes``: the class ``k_j`` each LF votes for, length m. ``quality_guides``:
    the guessed precision ``q_j`` of each LF, one float for all or one per LF, each in
    the open interval (0, 1); ``None`` drops the regulariser.

    Scikit-learn style: ``CAGE(2, k).fit(L).predict(L_test)``; for joint training use
    ``fire_mask``, ``log_posterior`` / ``forward``, ``nll_labeled``, ``nll_unlabeled``
    and ``quality_regularizer`` (torch tensors, differentiable in ``theta``).
    """

    def __init__(self, num_classes: int, lf_classes, quality_guides: float | Sequence[float] | None = 0.85):
        super().__init__()
        num_classes = check_int("num_classes", num_classes, minimum=2)
        if hasattr(lf_classes, "detach"):
            lf_classes = lf_classes.detach().cpu().numpy()
        classes = np.asarray(lf_classes)
        if classes.ndim != 1 or classes.size == 0:
            raise ValueError(f"lf_classes must be a non-empty 1-D sequence (one class per LF), "
                             f"got shape {classes.shape}")
        if classes.dtype.kind not in "iu":
            raise ValueError(f"lf_classes must hold integer classes, got dtype {classes.dtype}")
        out_of_range = (classes < 0) | (classes >= num_classes)
        if out_of_range.any():
            raise ValueError(f"lf_classes must lie in 0..{num_classes - 1}; "
                             f"found {sorted(set(classes[out_of_range].tolist()))}")
        num_lfs = classes.size
        self.num_classes, self.num_lfs = num_classes, num_lfs
        self.register_buffer("lf_classes", torch.as_tensor(classes, dtype=torch.long))
        if quality_guides is None:
            self.register_buffer("quality_guides", None)
        else:
            guides = np.asarray(quality_guides, dtype=np.float64)
            if guides.ndim == 0:
                guides = np.full(num_lfs, float(guides))
            if guides.shape != (num_lfs,):
                raise ValueError(f"quality_guides must be one float or one per LF ({num_lfs}), "
                                 f"got shape {guides.shape}")
            if not np.all((guides > 0) & (guides < 1)):
                raise ValueError(f"quality_guides must lie strictly between 0 and 1 (a precision guess); "
                                 f"got {sorted(set(guides[~((guides > 0) & (guides < 1))].tolist()))}")
            self.register_buffer("quality_guides", torch.as_tensor(guides, dtype=torch.float64))
        theta = torch.zeros(num_classes, num_lfs, dtype=torch.float64)
        theta[self.lf_classes, torch.arange(num_lfs)] = 1.0
        self.theta = torch.nn.Parameter(theta)
        self.loss_history_: list[float] = []

    # -- inputs ------------------------------------------------------------------------------

    def check_weak_labels(self, weak_labels, *, name: str = "weak_labels") -> np.ndarray:
        """``weak_labels`` as int64 after the checks (range, LF count, votes match ``lf_classes``)."""
        matrix = check_lf_matrix(weak_labels, self.num_classes, name=name)
        if matrix.shape[1] != self.num_lfs:
            raise ValueError(f"{name} has {matrix.shape[1]} LF columns but the model has {self.num_lfs} LFs "
                             f"(len(lf_classes))")
        classes = self.lf_classes.cpu().numpy()
        wrong = (matrix != ABSTAIN) & (matrix != classes[None, :])
        if wrong.any():
            i, j = map(int, np.argwhere(wrong)[0])
            raise ValueError(f"{name}: LF {j} votes {int(matrix[i, j])} on row {i} but lf_classes says it "
                             f"votes {int(classes[j])}; one class per LF (are the columns in order?)")
        return matrix

    def fire_mask(self, weak_labels) -> torch.Tensor:
        """``m_ij = [l_ij != -1]`` as a float64 (n, m) tensor on ``theta``'s device."""
        matrix = self.check_weak_labels(weak_labels)
        return torch.as_tensor(matrix != ABSTAIN, dtype=self.theta.dtype, device=self.theta.device)

    def _check_labels(self, labels, n: int, *, allow_unlabeled: bool, name: str = "labels") -> np.ndarray:
        if hasattr(labels, "detach"):
            labels = labels.detach().cpu().numpy()
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != n:
            raise ValueError(f"{name} must be 1-D with one entry per row of the LF matrix ({n}), "
                             f"got shape {labels.shape}")
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer classes, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
        low = ABSTAIN if allow_unlabeled else 0
        bad = (labels < low) | (labels >= self.num_classes)
        if bad.any():
            allowed = f"-1 (unlabeled) or 0..{self.num_classes - 1}" if allow_unlabeled else \
                f"0..{self.num_classes - 1}"
            raise ValueError(f"{name} must lie in {allowed} for num_classes={self.num_classes}; "
                             f"found {sorted(set(labels[bad].tolist()))}")
        return labels

    # -- the model -----------------------------------------------------------------------------

    def log_partition(self) -> torch.Tensor:
        return cage_log_partition(self.theta)

    def log_joint(self, fire_mask: torch.Tensor) -> torch.Tensor:
        """``log P(l, y)``, (n, C), for a fire mask (n, m) (see ``fire_mask``)."""
        return cage_log_joint(self.theta, self._as_mask(fire_mask))

    def log_posterior(self, fire_mask: torch.Tensor) -> torch.Tensor:
        """``log P(y | l)``, (n, C), for a fire mask (n, m)."""
        return cage_log_posterior(self.theta, self._as_mask(fire_mask))

    def forward(self, fire_mask: torch.Tensor) -> torch.Tensor:
        return self.log_posterior(fire_mask)

    def nll_labeled(self, weak_labels, y) -> torch.Tensor:
        """``-log P(y_i | l_i)`` per example, (n,)."""
        fire = self.fire_mask(weak_labels)
        labels = self._check_labels(y, fire.shape[0], allow_unlabeled=False, name="y")
        target = torch.as_tensor(labels, device=fire.device)
        return -self.log_posterior(fire).gather(1, target.view(-1, 1)).squeeze(1)

    def nll_unlabeled(self, weak_labels) -> torch.Tensor:
        """``-log sum_y P(l_i, y)`` per example, (n,)."""
        return -torch.logsumexp(self.log_joint(self.fire_mask(weak_labels)), dim=1)

    def quality_precision(self) -> torch.Tensor:
        """``P(y = k_j | l_j fires)`` under the model, (m,)."""
        return cage_quality_log_precision(self.theta, self.lf_classes)[0].exp()

    def quality_regularizer(self) -> torch.Tensor:
        """CAGE eq. 9, summed over LFs (0 when ``quality_guides`` is None)."""
        if self.quality_guides is None:
            return self.theta.new_zeros(())
        log_p, log_not_p = cage_quality_log_precision(self.theta, self.lf_classes)
        q = self.quality_guides.to(self.theta)
        return -(q * log_p + (1 - q) * log_not_p).sum()

    def _as_mask(self, fire_mask) -> torch.Tensor:
        mask = torch.as_tensor(fire_mask, device=self.theta.device).to(self.theta.dtype)
        if mask.ndim != 2 or mask.shape[1] != self.num_lfs:
            raise ValueError(f"fire_mask must be (n, {self.num_lfs}), got shape {tuple(mask.shape)}")
        return mask

    # -- scikit-learn style --------------------------------------------------------------------

    def fit(self, weak_labels, labels=None, *, labeled_weak_labels=None, labeled_labels=None,
            epochs: int = 300, lr: float = 0.05, quality_weight: float = 1.0) -> CAGE:
        """Fit ``theta`` by full-batch Adam; returns self.

        ``weak_labels`` (n, m): the training LF matrix. ``labels`` (n,), optional: gold
        classes for its rows, ``-1`` for a row without one (those rows, or all rows when
        ``labels`` is None, enter the unsupervised term). ``labeled_weak_labels`` with
        ``labeled_labels``: a separate labeled set (SPEAR's L next to U). The loss is the
        mean unsupervised NLL + the mean supervised NLL + ``quality_weight`` * R.
        ``loss_history_`` keeps the loss per epoch.
        """
        check_int("epochs", epochs, minimum=1)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not quality_weight >= 0:
            raise ValueError(f"quality_weight must be >= 0, got {quality_weight!r}")
        matrix = self.check_weak_labels(weak_labels)
        row_labels = (np.full(len(matrix), ABSTAIN, dtype=np.int64) if labels is None
                      else self._check_labels(labels, len(matrix), allow_unlabeled=True))
        if (labeled_weak_labels is None) != (labeled_labels is None):
            raise ValueError("labeled_weak_labels and labeled_labels go together: pass both or neither")
        sup_matrix, sup_labels = matrix[row_labels != ABSTAIN], row_labels[row_labels != ABSTAIN]
        if labeled_weak_labels is not None:
            extra = self.check_weak_labels(labeled_weak_labels, name="labeled_weak_labels")
            extra_labels = self._check_labels(labeled_labels, len(extra), allow_unlabeled=False,
                                              name="labeled_labels")
            sup_matrix = np.concatenate([sup_matrix, extra])
            sup_labels = np.concatenate([sup_labels, extra_labels])
        unsup_fire = self.fire_mask(matrix[row_labels == ABSTAIN])
        sup_fire = self.fire_mask(sup_matrix)
        sup_target = torch.as_tensor(sup_labels, device=self.theta.device).view(-1, 1)
        if len(unsup_fire) + len(sup_fire) == 0:
            raise ValueError("fit needs at least one example (the LF matrices are empty)")

        optimizer = torch.optim.Adam([self.theta], lr=lr)
        self.loss_history_ = []
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = quality_weight * self.quality_regularizer()
            if len(unsup_fire):
                loss = loss - torch.logsumexp(self.log_joint(unsup_fire), dim=1).mean()
            if len(sup_fire):
                loss = loss - self.log_posterior(sup_fire).gather(1, sup_target).mean()
            loss.backward()
            optimizer.step()
            self.loss_history_.append(float(loss.detach()))
        return self

    @torch.no_grad()
    def predict_proba(self, weak_labels) -> np.ndarray:
        """``P(y | l)`` as a float64 (n, C) array; rows where no LF fires are uniform."""
        return self.log_posterior(self.fire_mask(weak_labels)).exp().cpu().numpy()

    def predict(self, weak_labels, *, tie_break: str = "random", seed: int | None = 0) -> np.ndarray:
        """Most probable class per row, (n,) int64.

        Ties (in practice: rows where no LF fires, whose posterior is uniform) go to a
        random tied class drawn with ``seed`` (``tie_break="random"``) or to ``-1``
        (``tie_break="abstain"``).
        """
        return _argmax_break_ties(self.predict_proba(weak_labels), tie_break, seed)


def majority_vote(weak_labels, num_classes: int, *, tie_break: str = "random",
                  seed: int | None = 0) -> np.ndarray:
    """The class most LFs vote for on each row, (n,) int64.

    Ties and rows where every LF abstains go to a random class among the tied ones
    (all classes for an uncovered row), drawn with ``seed``, when ``tie_break="random"``,
    and to ``-1`` when ``tie_break="abstain"``.
    """
    matrix = check_lf_matrix(weak_labels, num_classes)
    counts = np.zeros((len(matrix), num_classes), dtype=np.float64)
    for c in range(num_classes):
        counts[:, c] = (matrix == c).sum(axis=1)
    return _argmax_break_ties(counts, tie_break, seed)


def _argmax_break_ties(scores: np.ndarray, tie_break: str, seed: int | None,
                       tol: float = 1e-12) -> np.ndarray:
    check_choice("tie_break", tie_break, _TIE_BREAKS)
    best = scores.max(axis=1, keepdims=True)
    tied = scores >= best - tol
    preds = scores.argmax(axis=1).astype(np.int64)
    ties = tied.sum(axis=1) > 1
    if tie_break == "abstain":
        preds[ties] = ABSTAIN
    elif ties.any():
        noise = np.random.default_rng(seed).random(scores.shape)
        preds[ties] = np.where(tied, noise, -1.0)[ties].argmax(axis=1)
    return preds
