"""WDUE: debiasing weights for distillation with unlabeled examples.

Paper: Iliopoulos, Kontonis, Baykal, Menghani, Trinh, Vee, "Weighted Distillation
with Unlabeled Examples", NeurIPS 2022 (sections 2.2-2.3, Algorithm 2 in appendix A,
section 3.3).

A teacher labels unlabeled examples and the student trains on those labels. Where the
teacher's label is right, the student's loss against it is the loss against the true
label y; where it is wrong, the loss is off by the distortion

    d(x) = loss(teacher label, student) / loss(y, student).

With p(x) the probability that the teacher is wrong at x and d(x) the distortion
given that it is wrong,

    E[loss(teacher label, student) | x] = ((1 - p) + p d) loss(y, student)
                                        = (1 + p (d - 1)) loss(y, student),

so the debiasing weight

    w(x) = min{1, 1 / (1 + p(x) (d(x) - 1))}

removes the distortion in expectation. The cap at 1 means examples are only ever
down-weighted: where d < 1 the teacher's wrong label is *easier* than the truth and
up-weighting it would reward the mistake.

Estimation (Algorithm 2). p and d are unknown; they are regressed with uniform
k-nearest neighbours (k = ceil(sqrt(|V|) / 2) by default) on a validation set V with
true labels, on the 2-d covariate (teacher confidence, student confidence). Each
validation example's response is (wrong, distortion), wrong = 1[teacher argmax != y]
and distortion = 1 where the teacher is right. The neighbourhood mean of the second
column mixes the right neighbours' 1s with the wrong neighbours' distortions, i.e. it
estimates E[distortion | x] = 1 + p (d - 1), not d; plugging it into the formula above
would count p twice (weights 1 / (1 + p^2 (d - 1))). ``predict_error`` therefore
returns the mean distortion of the *wrong* neighbours,

    d_hat = 1 + (mean distortion - 1) / p_hat        (d_hat = 1 where p_hat = 0),

for which 1 + p_hat (d_hat - 1) is exactly the neighbourhood mean distortion.

Losses are the student's cross-entropy: against the teacher's argmax class
(``teacher_labels="hard"``) or its probability vector (``"soft"``, sum_c t_c
(-log s_c)), and against the true class for loss(y, student). Where the teacher's
argmax is right the distortion is taken as 1 in both modes (the paper's convention:
only wrong labels are corrected).

Fidelity (section 3.3): the weight exp(-H(x) / mean H) with H the teacher's predictive
entropy, the mean taken over the examples being weighted, trusts confident teacher
labels more; ``composition_weights`` multiplies it with the debiasing weight.

Numerics: ``eps`` floors the student's probabilities inside the log (a probability of
0 would make a loss infinite), floors loss(y, student) in the distortion's
denominator, and floors 1 + p_hat (d_hat - 1) before the division. The last one
cannot reach 0 in exact arithmetic unless p_hat = 1 and d_hat = 0 (it equals
(1 - p_hat) + p_hat d_hat with both terms >= 0), and there the capped weight is 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..checks import check_choice, check_int, check_positive

CONFIDENCE_MEASURES = ("margin", "entropy")
TEACHER_LABELS = ("hard", "soft")
ROW_SUM_TOLERANCE = 1e-4

Confidence = str | Callable[[np.ndarray], np.ndarray]


def confidence_scores(probs, measure: Confidence) -> np.ndarray:
    """Per-example confidence of (n, C) probabilities; larger means more confident.

    ``"margin"``: top-1 minus top-2 probability, in [0, 1].
    ``"entropy"``: 1 - H(probs) / log C, in [0, 1] (1 for a one-hot row, 0 for the
    uniform one). Normalising by log C puts it on the same [0, 1] scale as the margin,
    which matters because the k-NN distance mixes the teacher's and student's scores.
    A callable gets the validated float64 (n, C) array and must return n finite scores.
    """
    probs = _check_probs("probs", probs)
    _check_measure(measure)
    if measure == "margin":
        top2 = np.partition(probs, -2, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]
    if measure == "entropy":
        return 1.0 - _entropy(probs) / math.log(probs.shape[1])
    scores = _to_float64("the confidence callable's output", measure(probs))
    if scores.shape != (probs.shape[0],):
        raise ValueError(
            f"the confidence callable must return shape ({probs.shape[0]},) (one score per row), "
            f"got {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("the confidence callable must return finite scores, got NaN or inf")
    return scores


class DebiasingWeights:
    """WDUE's k-NN estimate of the teacher's error rate and distortion, and the weights.

    Args:
        k: neighbours of the k-NN regression; default ceil(sqrt(|V|) / 2). ``fit``
            needs |V| >= 2k.
        confidence: ``"margin"``, ``"entropy"`` or a callable (see ``confidence_scores``),
            applied to both the teacher's and the student's probabilities.
        teacher_labels: ``"hard"`` (the student trains on the teacher's argmax) or
            ``"soft"`` (on the teacher's probability vector).
        eps: numerical floor (see the module docstring).

    ``fit`` sets ``k_`` (the k used) and ``n_classes_``.
    """

    def __init__(
        self,
        k: int | None = None,
        *,
        confidence: Confidence = "margin",
        teacher_labels: str = "hard",
        eps: float = 1e-8,
    ):
        self.k = None if k is None else check_int("k", k, minimum=1)
        self.confidence = _check_measure(confidence)
        self.teacher_labels = check_choice("teacher_labels", teacher_labels, TEACHER_LABELS)
        self.eps = check_positive("eps", eps)
        if self.eps >= 1:
            raise ValueError(f"eps must be a small number in (0, 1), got {eps}")
        self._knn = None  # a fitted sklearn KNeighborsRegressor

    def fit(self, teacher_probs, student_probs, labels) -> DebiasingWeights:
        """Fit the k-NN regression on a validation set with true ``labels``."""
        teacher, student = _check_pair(teacher_probs, student_probs)
        labels = _check_labels(labels, *teacher.shape)
        n = teacher.shape[0]
        k = self.k if self.k is not None else default_k(n)
        if n < 2 * k:
            raise ValueError(
                f"the validation set needs at least 2k = {2 * k} examples for k = {k}, got |V| = {n}"
            )
        wrong = teacher.argmax(axis=1) != labels
        distortion = np.where(wrong, self._distortion(teacher, student, labels), 1.0)
        response = np.stack([wrong.astype(np.float64), distortion], axis=1)
        # imported here: scikit-learn costs seconds at import, and only fitting needs it
        from sklearn.neighbors import KNeighborsRegressor

        self._knn = KNeighborsRegressor(n_neighbors=k, weights="uniform")
        self._knn.fit(self._covariate(teacher, student), response)
        self.k_ = k
        self.n_classes_ = teacher.shape[1]
        return self

    def predict_error(self, teacher_probs, student_probs) -> tuple[np.ndarray, np.ndarray]:
        """(p_hat, d_hat): the teacher's error rate and its distortion given an error.

        p_hat is in [0, 1]; d_hat >= 0 is the mean distortion of the neighbours on which
        the teacher is wrong (1 where there are none; see the module docstring).
        """
        teacher, student = self._check_predict_inputs(teacher_probs, student_probs)
        mean = self._knn.predict(self._covariate(teacher, student)).reshape(-1, 2)
        p_hat = np.clip(mean[:, 0], 0.0, 1.0)
        # Right neighbours contribute exactly 1 each to the mean distortion; removing them
        # leaves the wrong neighbours' mean. p_hat is a multiple of 1/k, so > 0 means >= 1/k.
        excess = mean[:, 1] - 1.0
        d_hat = np.where(p_hat > 0, 1.0 + excess / np.maximum(p_hat, 1.0 / self.k_), 1.0)
        return p_hat, np.maximum(d_hat, 0.0)  # >= 0 up to rounding: distortions are >= 0

    def weights(self, teacher_probs, student_probs) -> np.ndarray:
        """Debiasing weights min{1, 1 / (1 + p_hat (d_hat - 1))}, shape (n,), in (0, 1]."""
        p_hat, d_hat = self.predict_error(teacher_probs, student_probs)
        inflation = np.maximum(1.0 + p_hat * (d_hat - 1.0), self.eps)
        return np.minimum(1.0, 1.0 / inflation)

    def _distortion(self, teacher: np.ndarray, student: np.ndarray, labels: np.ndarray) -> np.ndarray:
        log_student = np.log(np.maximum(student, self.eps))
        rows = np.arange(teacher.shape[0])
        true_loss = -log_student[rows, labels]
        if self.teacher_labels == "hard":
            teacher_loss = -log_student[rows, teacher.argmax(axis=1)]
        else:
            teacher_loss = -(teacher * log_student).sum(axis=1)
        # A student that is (almost) certain of the true class has loss(y) ~ 0.
        return teacher_loss / np.maximum(true_loss, self.eps)

    def _covariate(self, teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
        return np.stack(
            [confidence_scores(teacher, self.confidence), confidence_scores(student, self.confidence)],
            axis=1,
        )

    def _check_predict_inputs(self, teacher_probs, student_probs) -> tuple[np.ndarray, np.ndarray]:
        if self._knn is None:
            raise RuntimeError(
                "DebiasingWeights is not fitted: call fit(teacher_probs, student_probs, labels) "
                "on a labelled validation set first"
            )
        teacher, student = _check_pair(teacher_probs, student_probs)
        if teacher.shape[1] != self.n_classes_:
            raise ValueError(
                f"probabilities must have {self.n_classes_} classes (as in fit), got {teacher.shape[1]}"
            )
        return teacher, student


def default_k(num_validation: int) -> int:
    """The default number of neighbours, ceil(sqrt(|V|) / 2)."""
    check_int("num_validation", num_validation, minimum=1)
    return max(1, math.ceil(math.sqrt(num_validation) / 2))


def fidelity_weights(teacher_probs) -> np.ndarray:
    """exp(-H(x) / mean H) over the given examples, shape (n,), in (0, 1].

    H is the teacher's predictive entropy (natural log). If every row is one-hot
    (mean H = 0) every example is fully trusted: all weights are 1.
    """
    entropy = _entropy(_check_probs("teacher_probs", teacher_probs))
    mean = float(entropy.mean())
    if mean <= 0.0:
        return np.ones_like(entropy)
    return np.exp(-entropy / mean)


def composition_weights(debiasing: DebiasingWeights, teacher_probs, student_probs) -> np.ndarray:
    """Debiasing weight times fidelity weight (section 3.3), shape (n,)."""
    if not isinstance(debiasing, DebiasingWeights):
        raise TypeError(f"debiasing must be a DebiasingWeights, got {type(debiasing).__name__}")
    return debiasing.weights(teacher_probs, student_probs) * fidelity_weights(teacher_probs)


def _entropy(probs: np.ndarray) -> np.ndarray:
    # 0 log 0 = 0: zero probabilities contribute nothing (log of them is never taken).
    safe = np.where(probs > 0, probs, 1.0)
    return -(probs * np.log(safe)).sum(axis=1)


def _check_measure(measure: Confidence) -> Confidence:
    if callable(measure) or measure in CONFIDENCE_MEASURES:
        return measure
    raise ValueError(
        f"confidence must be one of {list(CONFIDENCE_MEASURES)} or a callable probs (n, C) -> (n,), "
        f"got {measure!r}"
    )


def _to_float64(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value.detach().to(device="cpu", dtype=torch.float64).numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value.astype(np.float64)
    raise TypeError(f"{name} must be a numpy array or a torch.Tensor, got {type(value).__name__}")


def _check_probs(name: str, value) -> np.ndarray:
    """(n, C) rows of probabilities: finite, in [0, 1], summing to 1."""
    probs = _to_float64(name, value)
    if probs.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n examples, C classes), got shape {probs.shape}")
    n, num_classes = probs.shape
    if n < 1 or num_classes < 2:
        raise ValueError(f"{name} needs at least 1 row and 2 classes, got shape {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    if probs.min() < 0.0 or probs.max() > 1.0:
        raise ValueError(
            f"{name} must be probabilities in [0, 1] (apply softmax to logits), "
            f"got values in [{probs.min():.4g}, {probs.max():.4g}]"
        )
    sums = probs.sum(axis=1)
    worst = int(np.abs(sums - 1.0).argmax())
    if abs(sums[worst] - 1.0) > ROW_SUM_TOLERANCE:
        raise ValueError(
            f"{name} rows must sum to 1 (tolerance {ROW_SUM_TOLERANCE:g}), got row {worst} summing to "
            f"{sums[worst]:.6g}"
        )
    return probs


def _check_pair(teacher_probs, student_probs) -> tuple[np.ndarray, np.ndarray]:
    teacher = _check_probs("teacher_probs", teacher_probs)
    student = _check_probs("student_probs", student_probs)
    if teacher.shape != student.shape:
        raise ValueError(
            f"teacher_probs and student_probs must have the same shape (n, C), "
            f"got {teacher.shape} and {student.shape}"
        )
    return teacher, student


def _check_labels(value, n: int, num_classes: int) -> np.ndarray:
    """1-D integer class indices, one per example, in [0, C - 1]."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"labels must be integer class indices, got dtype {value.dtype}")
        labels = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray):
        if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"labels must be integer class indices, got dtype {value.dtype}")
        labels = value
    else:
        raise TypeError(f"labels must be a numpy array or a torch.Tensor, got {type(value).__name__}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) (one per example), got {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}] (class indices), "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    return labels.astype(np.int64)
