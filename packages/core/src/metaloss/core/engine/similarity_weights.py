"""L2T-DLN's data reweighting (NeurIPS 2023, supplement §5, eqs. 31-34).

A training example matters as much as its embedding resembles the centre of its (observed)
label's class among the validation embeddings; the weights are normalised to sum to 1 in each
batch (w_i = w~_i / sum_j w~_j). With noisy labels, an example whose label is wrong sits far
from that class's centre and gets a small weight.

The similarity s(a, b) of a training embedding a to its class centre b, made non-negative so
that the normalisation is a weighting:
- ``"snr"`` (eq. 34, the paper's best): PS / PN with PS = var(a), PN = var(a - b). Eq. 34 is
  10 log10(PS / PN), which can be negative; the power ratio orders examples the same way.
- ``"cosine"`` (eq. 31): (1 + cos(a, b)) / 2, in [0, 1].
- ``"dot"`` (eq. 32): max(a . b, 0); CNN features after a ReLU and pooling are non-negative,
  so the clamp only matters for other embeddings.
- ``"minkowski"`` (eq. 33, p = 2 in the paper): 1 / (1 + L_p(a, b)), a distance made a similarity.
A batch whose similarities are all zero gets uniform weights.

Where the authors' code differs: it weights example i by pytorch-metric-learning's SNR *distance*
var(x_i - c_j) / var(x_i) summed over the centres c_j of the batch's labels, which is larger far
from the centres. The supplement's text asks the opposite ("how comparable they are to the
corresponding validation class center"); this module follows the text.
"""

from __future__ import annotations

import torch

from ..checks import (
    check_choice,
    check_class_indices,
    check_int,
    check_positive,
    check_same_rows,
    check_tensor,
)

METRICS = ("snr", "cosine", "dot", "minkowski")


def class_centres(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, D) mean embedding of each class; every class must have at least one example."""
    check_tensor("embeddings", embeddings, ndim=2, floating=True)
    check_tensor("labels", labels, ndim=1, floating=False)
    check_same_rows(embeddings=embeddings, labels=labels)
    check_int("num_classes", num_classes, minimum=1)
    check_class_indices("labels", labels, num_classes)
    counts = torch.bincount(labels, minlength=num_classes)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError("every class needs a validation example to have a centre; "
                         f"classes {missing} have none")
    sums = torch.zeros(num_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, labels, embeddings.detach())
    return sums / counts.unsqueeze(1).to(embeddings.dtype)


def similarity_weights(embeddings: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor, *,
                       metric: str = "snr", p: float = 2.0) -> torch.Tensor:
    """Per-example weights (B,), non-negative and summing to 1, from each embedding's similarity
    to its label's centre (``centres`` from ``class_centres`` on validation embeddings)."""
    check_tensor("embeddings", embeddings, ndim=2, floating=True)
    check_tensor("labels", labels, ndim=1, floating=False)
    check_tensor("centres", centres, ndim=2, floating=True)
    check_same_rows(embeddings=embeddings, labels=labels)
    check_choice("metric", metric, METRICS)
    if check_positive("p", p) < 1:
        raise ValueError(f"the Minkowski order p must be >= 1, got {p}")
    if centres.shape[1] != embeddings.shape[1]:
        raise ValueError(f"centres must have the embeddings' width {embeddings.shape[1]}, "
                         f"got {centres.shape[1]}")
    check_class_indices("labels", labels, centres.shape[0], why=" (one centre per class)")
    a, b = embeddings.detach(), centres[labels].detach()
    scores = _similarity(a, b, metric, p)
    total = scores.sum()
    if total <= 0:
        return torch.full_like(scores, 1.0 / max(len(scores), 1))
    return scores / total


def _similarity(a: torch.Tensor, b: torch.Tensor, metric: str, p: float) -> torch.Tensor:
    if metric == "snr":
        signal = a.var(dim=1, unbiased=False)
        # eps * PS keeps an embedding equal to its centre finite (1 / eps) instead of infinite
        noise = (a - b).var(dim=1, unbiased=False) + torch.finfo(a.dtype).eps * signal
        return signal / noise.clamp(min=torch.finfo(a.dtype).tiny)
    if metric == "cosine":
        return (1 + torch.nn.functional.cosine_similarity(a, b, dim=1)) / 2
    if metric == "dot":
        return (a * b).sum(dim=1).clamp(min=0)
    return 1 / (1 + torch.linalg.vector_norm(a - b, ord=p, dim=1))
