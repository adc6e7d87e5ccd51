"""Label-noise generators (rates, transition structure, seeding, validation) and long-tailed subsets.

Rates are measured on 20,000 balanced labels (2,000 per class); a Bernoulli(0.4) rate over 20k has
a standard deviation of 0.0035, so the 0.015 tolerance is about four standard deviations.
"""

import pytest
import torch

from metaloss.vision.imbalance import long_tailed_counts, long_tailed_indices
from metaloss.vision.noise import (
    CIFAR10_ASYMMETRIC,
    NOISE_GENERATORS,
    NOISE_KINDS,
    asymmetric_noise,
    corrupt_labels,
    instance_dependent_noise,
    pair_noise,
    symmetric_noise,
    transition_matrix,
    two_similar_classes_noise,
)

C = 10
LABELS = torch.arange(C).repeat(2000)
RATE_TOL = 0.015


def _features(seed: int, shape: tuple[int, ...] = (LABELS.numel(), 3, 4, 4)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _pair(labels, rate, seed):
    return pair_noise(labels, rate, C, seed=seed)


def _asym(labels, rate, seed):
    return asymmetric_noise(labels, rate, mapping=CIFAR10_ASYMMETRIC, seed=seed)


def _similar(labels, rate, seed):
    return two_similar_classes_noise(labels, rate, C, seed=seed)


def _instance(labels, rate, seed):
    return instance_dependent_noise(labels, _features(0, (labels.numel(), 48)), rate, C, seed=seed)


GENERATORS = pytest.mark.parametrize("generate", [_pair, _asym, _similar, _instance],
                                     ids=["pair", "asymmetric", "two_similar", "instance"])


@GENERATORS
def test_mask_seeding_and_zero_rate(generate):
    noisy, corrupted = generate(LABELS, 0.4, 3)
    assert noisy.dtype == LABELS.dtype and corrupted.dtype == torch.bool
    assert torch.equal(corrupted, noisy != LABELS)
    again, _ = generate(LABELS, 0.4, 3)
    other, _ = generate(LABELS, 0.4, 4)
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)
    clean, none = generate(LABELS, 0.0, 3)
    assert torch.equal(clean, LABELS) and not none.any()


def test_pair_noise_rate_and_transitions():
    noisy, corrupted = pair_noise(LABELS, 0.4, C, seed=0)
    assert abs(corrupted.float().mean().item() - 0.4) < RATE_TOL
    t = transition_matrix(LABELS, noisy, C)
    nxt = (torch.arange(C) + 1) % C
    allowed = torch.eye(C, dtype=torch.bool)
    allowed[torch.arange(C), nxt] = True
    assert t[~allowed].sum() == 0  # off-diagonal mass only at (c, c + 1 mod C)
    assert (t[torch.arange(C), nxt] - 0.4).abs().max() < 0.04  # per class: 2000 labels each


def test_asymmetric_noise_only_mapped_pairs():
    noisy, corrupted = asymmetric_noise(LABELS, 0.4, mapping=CIFAR10_ASYMMETRIC, seed=0)
    mapped = torch.isin(LABELS, torch.tensor(list(CIFAR10_ASYMMETRIC)))
    assert abs(corrupted[mapped].float().mean().item() - 0.4) < RATE_TOL
    assert abs(corrupted.float().mean().item() - 0.2) < RATE_TOL  # half of CIFAR-10's classes are mapped
    assert not corrupted[~mapped].any()
    t = transition_matrix(LABELS, noisy, C)
    allowed = torch.eye(C, dtype=torch.bool)
    for source, target in CIFAR10_ASYMMETRIC.items():
        allowed[source, target] = True
        assert abs(t[source, target].item() - 0.4) < 0.04
    assert t[~allowed].sum() == 0
    # truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog
    assert dict(CIFAR10_ASYMMETRIC) == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def test_asymmetric_noise_custom_mapping_and_bad_mappings():
    labels = torch.tensor([0, 1, 2, 3] * 50)
    noisy, _ = asymmetric_noise(labels, 1.0, mapping={0: 3}, seed=0)
    assert torch.equal(noisy, torch.where(labels == 0, 3, labels))
    with pytest.raises(ValueError, match="sends class 2 to itself"):
        asymmetric_noise(labels, 0.1, mapping={2: 2}, seed=0)
    with pytest.raises(ValueError, match=r"mapping\[1\] must be an int >= 0, got -1"):
        asymmetric_noise(labels, 0.1, mapping={1: -1}, seed=0)
    with pytest.raises(TypeError, match="mapping must be a Mapping"):
        asymmetric_noise(labels, 0.1, mapping=[(0, 1)], seed=0)
    with pytest.raises(ValueError, match="labels must be non-negative class indices, got a minimum of -1"):
        asymmetric_noise(torch.tensor([-1, 0]), 0.1, mapping={0: 1}, seed=0)


def test_two_similar_classes_rate_and_transitions():
    noisy, corrupted = two_similar_classes_noise(LABELS, 0.4, C, seed=0)
    assert abs(corrupted.float().mean().item() - 0.4) < RATE_TOL
    t = transition_matrix(LABELS, noisy, C)
    c = torch.arange(C)
    allowed = torch.eye(C, dtype=torch.bool)
    allowed[c, (c + 1) % C] = True
    allowed[c, (c + 2) % C] = True
    assert t[~allowed].sum() == 0
    # each similar class gets about rate / 2 (2000 labels per class: 0.035 is about four standard deviations)
    assert (t[c, (c + 1) % C] - 0.2).abs().max() < 0.035
    assert (t[c, (c + 2) % C] - 0.2).abs().max() < 0.035
    moved = (noisy[corrupted] - LABELS[corrupted]) % C
    assert abs((moved == 1).float().mean().item() - 0.5) < 0.03


def test_two_similar_classes_explicit_map_and_bad_maps():
    similar = {0: (2, 3), 1: (0, 2), 2: (0, 1), 3: (1, 2)}
    labels = torch.arange(4).repeat(2000)
    noisy, corrupted = two_similar_classes_noise(labels, 0.5, 4, seed=1, similar=similar)
    t = transition_matrix(labels, noisy, 4)
    for c, (a, b) in similar.items():
        assert abs(t[c, a].item() - 0.25) < 0.04 and abs(t[c, b].item() - 0.25) < 0.04
        assert abs(t[c, c].item() - 0.5) < 0.04
        assert t[c].sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"missing \[3\]"):
        two_similar_classes_noise(labels, 0.1, 4, seed=0, similar={0: (1, 2), 1: (0, 2), 2: (0, 1)})
    with pytest.raises(ValueError, match=r"similar\[1\] must be two distinct classes other than 1"):
        two_similar_classes_noise(labels, 0.1, 4, seed=0, similar={**similar, 1: (1, 2)})
    with pytest.raises(ValueError, match=r"similar\[0\] entries must be an int >= 0 and <= 3, got 7"):
        two_similar_classes_noise(labels, 0.1, 4, seed=0, similar={**similar, 0: (1, 7)})
    with pytest.raises(ValueError, match=r"similar\[2\] must be a pair"):
        two_similar_classes_noise(labels, 0.1, 4, seed=0, similar={**similar, 2: (0, 1, 3)})
    with pytest.raises(ValueError, match="need num_classes >= 3"):
        two_similar_classes_noise(torch.tensor([0, 1]), 0.1, 2, seed=0)


def test_instance_dependent_rate_and_feature_dependence():
    feats_a, feats_b = _features(1), _features(2)
    noisy_a, mask_a = instance_dependent_noise(LABELS, feats_a, 0.4, C, seed=0)
    noisy_b, mask_b = instance_dependent_noise(LABELS, feats_b, 0.4, C, seed=0)
    for mask in (mask_a, mask_b):
        assert abs(mask.float().mean().item() - 0.4) < RATE_TOL
    # same seed, different features: different flips (targets, and through the CDF draw, which ones)
    assert not torch.equal(mask_a, mask_b) and not torch.equal(noisy_a, noisy_b)
    # near the bounds the truncated normal pulls the mean in: E = 0.1 + 0.1 * phi(-1) / (1 - Phi(-1))
    _, low = instance_dependent_noise(LABELS, feats_a, 0.1, C, seed=0)
    assert abs(low.float().mean().item() - 0.1288) < RATE_TOL


def test_instance_dependent_excludes_true_class_and_follows_features():
    # Zero features give equal scores, so flips spread evenly over the C - 1 *other* classes: the
    # diagonal keeps 1 - rate = 0.6 (it would be 0.64 if the true class shared the softmax).
    noisy, _ = instance_dependent_noise(LABELS, torch.zeros(LABELS.numel(), 5), 0.4, C, seed=0)
    t = transition_matrix(LABELS, noisy, C)
    assert abs(t.diagonal().mean().item() - 0.6) < 0.01
    off = t[~torch.eye(C, dtype=torch.bool)]
    assert (off - 0.4 / (C - 1)).abs().max() < 0.02
    # Identical features within a (cluster, class) group share one flip distribution, which the random
    # projection makes peaked: flips concentrate on few classes, unlike the uniform case above.
    cluster = torch.arange(LABELS.numel()) // C % 4
    centres = 3 * _features(5, (4, 16))
    noisy, corrupted = instance_dependent_noise(LABELS, centres[cluster], 0.4, C, seed=0)
    top_share = []
    for k in range(4):
        for c in range(C):
            flips = noisy[(cluster == k) & (LABELS == c) & corrupted]
            top_share.append(torch.bincount(flips, minlength=C).max().item() / flips.numel())
    assert sum(top_share) / len(top_share) > 0.6


@pytest.mark.parametrize("generate", [symmetric_noise, pair_noise, two_similar_classes_noise],
                         ids=["symmetric", "pair", "two_similar"])
def test_bad_inputs(generate):
    good = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"rate must be a probability in \[0, 1\], got -0.1"):
        generate(good, -0.1, 3, seed=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got values in \[0, 3\]"):
        generate(torch.tensor([0, 3]), 0.1, 3, seed=0)
    not_1d = r"1-D integer tensor of class indices, got a torch.int64 tensor of shape \(3, 1\)"
    with pytest.raises(TypeError, match=not_1d):
        generate(good.reshape(3, 1), 0.1, 3, seed=0)
    with pytest.raises(TypeError, match="1-D integer tensor of class indices, got list"):
        generate([0, 1], 0.1, 3, seed=0)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        generate(torch.tensor([0]), 0.1, 1, seed=0)
    with pytest.raises(TypeError, match="seed must be an int, got 0.5"):
        generate(good, 0.1, 3, seed=0.5)


def test_instance_dependent_bad_features():
    labels = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"expected 3 rows, got shape \(2, 4\)"):
        instance_dependent_noise(labels, torch.zeros(2, 4), 0.1, 3, seed=0)
    with pytest.raises(TypeError, match=r"features must be a floating tensor of shape \(n, \.\.\.\)"):
        instance_dependent_noise(labels, torch.zeros(3, 4, dtype=torch.long), 0.1, 3, seed=0)
    with pytest.raises(TypeError, match="features must be a floating tensor"):
        instance_dependent_noise(labels, torch.zeros(3), 0.1, 3, seed=0)
    with pytest.raises(ValueError, match="features must be finite"):
        instance_dependent_noise(labels, torch.full((3, 2), float("nan")), 0.1, 3, seed=0)
    with pytest.raises(ValueError, match="rate must be a probability"):
        instance_dependent_noise(labels, torch.zeros(3, 2), 2.0, 3, seed=0)


def test_transition_matrix():
    clean = torch.tensor([0, 0, 0, 0, 1, 1])
    noisy = torch.tensor([0, 0, 0, 2, 1, 0])
    t = transition_matrix(clean, noisy, 3)
    expected = torch.tensor([[0.75, 0.0, 0.25], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(t, expected)  # class 2 is absent from clean: an all-zero row
    with pytest.raises(ValueError, match=r"same shape, got \(6,\) and \(2,\)"):
        transition_matrix(clean, noisy[:2], 3)
    with pytest.raises(ValueError, match=r"noisy must lie in \[0, 2\], got values in \[0, 5\]"):
        transition_matrix(clean, torch.tensor([0, 0, 0, 0, 1, 5]), 3)


def test_long_tailed_counts_follow_the_documented_rounding():
    labels = torch.arange(C).repeat(500)[torch.randperm(5000, generator=torch.Generator().manual_seed(0))]
    kept = long_tailed_indices(labels, C, imbalance_ratio=100, seed=0)
    counts = torch.bincount(labels[kept], minlength=C).tolist()
    # floor(500 * 100^(-i/9)): 299.74 -> 299, 179.69 -> 179, ..., and the exact tail 5.0 stays 5
    assert counts == [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    assert counts == long_tailed_counts(C, 500, imbalance_ratio=100)
    assert counts[0] / counts[-1] == 100
    # a ratio whose tail is not an integer: 500 / 30 = 16.7 -> 16, so the realised ratio is within rounding
    tail = long_tailed_counts(C, 500, imbalance_ratio=30)[-1]
    assert tail == 16 and 500 / (tail + 1) <= 30 <= 500 / tail
    # mu directly, with an explicit n_0 below the head class's 500; 400 * 0.7^2 = 195.99999999999997 in
    # floating point, which the documented rounding keeps at 196
    kept = long_tailed_indices(labels, C, mu=0.7, n_max=400, seed=0)
    assert torch.bincount(labels[kept], minlength=C).tolist() == [400, 280, 196, 137, 96, 67, 47, 32, 23, 16]


def test_long_tailed_indices_unique_sorted_and_seeded():
    labels = torch.arange(C).repeat(500)
    kept = long_tailed_indices(labels, C, imbalance_ratio=10, seed=0)
    assert kept.dtype == torch.int64 and len(torch.unique(kept)) == kept.numel()
    assert torch.equal(kept, torch.sort(kept).values)
    assert torch.equal(kept, long_tailed_indices(labels, C, imbalance_ratio=10, seed=0))
    assert not torch.equal(kept, long_tailed_indices(labels, C, imbalance_ratio=10, seed=1))


def test_long_tailed_bad_inputs():
    labels = torch.arange(4).repeat(100)
    with pytest.raises(ValueError, match="exactly one of imbalance_ratio and mu"):
        long_tailed_indices(labels, 4, seed=0)
    with pytest.raises(ValueError, match="exactly one of imbalance_ratio and mu"):
        long_tailed_indices(labels, 4, imbalance_ratio=10, mu=0.5, seed=0)
    with pytest.raises(ValueError, match="imbalance_ratio must be a finite number >= 1, got 0.5"):
        long_tailed_indices(labels, 4, imbalance_ratio=0.5, seed=0)
    with pytest.raises(ValueError, match=r"mu must be a number in \(0, 1\], got 1.5"):
        long_tailed_indices(labels, 4, mu=1.5, seed=0)
    with pytest.raises(ValueError, match="class 3 would keep no examples"):
        long_tailed_indices(labels, 4, imbalance_ratio=1000, seed=0)
    with pytest.raises(ValueError, match="class 0: 100 < 150; class 1: 100 < 106"):
        long_tailed_indices(labels, 4, imbalance_ratio=2.8, n_max=150, seed=0)
    with pytest.raises(ValueError, match="n_max must be an int >= 1, got 0"):
        long_tailed_indices(labels, 4, imbalance_ratio=2, n_max=0, seed=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        long_tailed_indices(labels + 1, 4, imbalance_ratio=2, seed=0)


def test_noise_generators_registry_shares_one_call_signature():
    assert set(NOISE_GENERATORS) == {"symmetric", "pair", "two_similar"}
    for name, generate in NOISE_GENERATORS.items():
        noisy, corrupted = generate(LABELS, 0.3, C, seed=0)
        assert torch.equal(corrupted, noisy != LABELS), name



def test_corrupt_labels_dispatches_by_name_to_the_same_draw():
    labels = torch.arange(10).repeat(50)
    features = torch.randn(500, 3, 4, 4)
    assert torch.equal(corrupt_labels("symmetric", labels, 0.3, 10, seed=4)[0],
                       symmetric_noise(labels, 0.3, 10, seed=4)[0])
    assert torch.equal(corrupt_labels("asymmetric", labels, 0.3, 10, seed=4)[0],
                       asymmetric_noise(labels, 0.3, mapping=CIFAR10_ASYMMETRIC, seed=4)[0])
    assert torch.equal(corrupt_labels("instance", labels, 0.3, 10, seed=4, features=features)[0],
                       instance_dependent_noise(labels, features, 0.3, 10, seed=4)[0])
    for kind in NOISE_KINDS:  # rate 0: labels unchanged, nothing marked corrupted
        noisy, corrupted = corrupt_labels(kind, labels, 0.0, 10, seed=1, features=features)
        assert torch.equal(noisy, labels) and not corrupted.any()


def test_corrupt_labels_refuses_what_its_generator_cannot_do():
    labels = torch.arange(10)
    with pytest.raises(ValueError, match="needs the examples' features"):
        corrupt_labels("instance", labels, 0.2, 10, seed=0)
    with pytest.raises(ValueError, match="CIFAR-10's class map and needs 10 classes, got 100"):
        corrupt_labels("asymmetric", labels, 0.2, 100, seed=0)
    with pytest.raises(ValueError, match="noise kind must be one of"):
        corrupt_labels("uniform", labels, 0.2, 10, seed=0)


def test_long_tailed_counts_at_least_keeps_every_class():
    with pytest.raises(ValueError, match="would keep no examples"):
        long_tailed_counts(10, 100, imbalance_ratio=200)
    counts = long_tailed_counts(10, 100, imbalance_ratio=200, at_least=1)
    assert counts[0] == 100 and min(counts) == 1 and counts == sorted(counts, reverse=True)
