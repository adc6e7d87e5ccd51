"""Symmetric label noise and the digits splits used by the default recipe."""

import pytest
import torch

from metaloss.vision.data import load_digits_splits
from metaloss.vision.noise import symmetric_noise


def test_symmetric_noise_rate_mask_and_transitions():
    labels = torch.arange(10).repeat(2000)
    noisy, corrupted = symmetric_noise(labels, 0.4, 10, seed=3)
    assert abs(corrupted.float().mean().item() - 0.4) < 0.015
    assert torch.equal(corrupted, noisy != labels)  # the mask is exactly the changed labels
    # flips are spread uniformly over the 9 other classes
    moved = (noisy[corrupted] - labels[corrupted]) % 10
    counts = torch.bincount(moved, minlength=10)[1:].float()
    assert counts.min() / counts.max() > 0.8
    again, _ = symmetric_noise(labels, 0.4, 10, seed=3)
    other, _ = symmetric_noise(labels, 0.4, 10, seed=4)
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)


def test_symmetric_noise_bad_inputs():
    with pytest.raises(ValueError, match="rate must be a probability"):
        symmetric_noise(torch.tensor([0, 1]), 1.5, 2, seed=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        symmetric_noise(torch.tensor([0, 2]), 0.1, 2, seed=0)
    with pytest.raises(TypeError, match="1-D integer"):
        symmetric_noise(torch.tensor([0.0]), 0.1, 2, seed=0)


def test_digits_splits_are_disjoint_and_seeded():
    s = load_digits_splits(0, teacher_train=300, student_train=800, val=300)
    parts = [s.teacher_train, s.student_train, s.val, s.test]
    assert [len(p) for p in parts] == [300, 800, 300, 397]
    assert len(torch.unique(torch.cat(parts))) == 1797
    assert s.images.shape == (1797, 64) and 0 <= s.images.min() and s.images.max() <= 1
    assert torch.equal(load_digits_splits(0, 300, 800, 300).val, s.val)
    assert not torch.equal(load_digits_splits(1, 300, 800, 300).val, s.val)
    with pytest.raises(ValueError, match="leave a test set"):
        load_digits_splits(0, 1000, 700, 97)
