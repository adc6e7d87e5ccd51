"""InstanceWeights: the update rule, projection, state and cross-process sync."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metaloss.core import InstanceWeights

from .toys import launch_two_gloo_processes

WORKER = Path(__file__).with_name("instance_weights_worker.py")


def test_step_is_mean_gradient_sgd_then_projection():
    w = InstanceWeights(4, 2, init=[0.5, 0.5], lr=0.1, lower=0.0, upper=1.0)
    w.accumulate(torch.tensor([0, 1, 1]), torch.tensor([[1.0, -1.0], [2.0, 0.0], [4.0, 0.0]]))
    assert w.step() == 2
    # row 0: 0.5 - 0.1*[1, -1]; row 1: mean grad [3, 0]; rows 2, 3 untouched
    torch.testing.assert_close(w.table, torch.tensor([[0.4, 0.6], [0.2, 0.5], [0.5, 0.5], [0.5, 0.5]]))
    w.accumulate(torch.tensor([2]), torch.tensor([[-100.0, 100.0]]))
    w.step()
    torch.testing.assert_close(w.table[2], torch.tensor([1.0, 0.0]))  # clamped to bounds
    w.step()  # nothing accumulated: no change
    torch.testing.assert_close(w.table[2], torch.tensor([1.0, 0.0]))


def test_normalized_rows_sum_to_one():
    w = InstanceWeights(3, 3, init=[1.0, 1.0, 2.0], lr=1.0, normalize=True)
    torch.testing.assert_close(w.table.sum(1), torch.ones(3))
    w.accumulate(torch.tensor([0, 1]), torch.tensor([[0.3, -0.2, 0.1], [5.0, 5.0, 5.0]]))
    w.step()
    torch.testing.assert_close(w.table.sum(1), torch.ones(3))
    torch.testing.assert_close(w.table[1], torch.full((3,), 1 / 3))  # all clamped to 0 -> uniform
    assert (w.table >= 0).all()


def test_state_dict_round_trip_and_mismatch():
    w = InstanceWeights(5, 2, init=0.3, lr=0.5)
    w.accumulate(torch.tensor([1]), torch.tensor([[0.2, -0.2]]))
    w.step()
    w2 = InstanceWeights(5, 2, init=0.0)
    w2.load_state_dict(w.state_dict())
    assert torch.equal(w2.table, w.table)
    with pytest.raises(ValueError, match=r"\(num_examples, K\) = \(5, 3\)"):
        InstanceWeights(5, 3).load_state_dict(w.state_dict())


def test_bad_inputs():
    w = InstanceWeights(5, 2)
    with pytest.raises(ValueError, match=r"grads must be \(batch, K\) = \(2, 2\)"):
        w.accumulate(torch.tensor([0, 1]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="finite"):
        w.accumulate(torch.tensor([0]), torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\]"):
        w(torch.tensor([5]))
    with pytest.raises(TypeError, match="integer tensor"):
        w(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="init must be a number or 2 values"):
        InstanceWeights(5, 2, init=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="lower must be <= upper"):
        InstanceWeights(5, 2, lower=1.0, upper=0.0)
    with pytest.raises(TypeError, match="num_examples must be an int"):
        InstanceWeights(5.0, 2)


@pytest.mark.multiprocess
def test_two_gloo_processes_match_one_process(tmp_path):
    done = launch_two_gloo_processes(WORKER, str(tmp_path / "multi"), port=29517)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(WORKER), str(tmp_path / "single")], check=True, env=env,
                   timeout=120, capture_output=True)
    rank0 = torch.load(tmp_path / "multi-rank0.pt")["table"]
    rank1 = torch.load(tmp_path / "multi-rank1.pt")["table"]
    single = torch.load(tmp_path / "single-rank0.pt")["table"]
    assert torch.equal(rank0, rank1)
    assert not torch.equal(single, torch.tensor([0.5, 0.3, 0.2]).repeat(50, 1))  # it moved
    torch.testing.assert_close(rank0, single, rtol=0, atol=1e-6)


def test_assign_sets_rows_projects_them_and_checks_their_shape():
    w = InstanceWeights(5, 1, init=1.0, lower=0.0)
    w.assign(torch.tensor([1, 3]), torch.tensor([[0.25], [-2.0]]))
    assert w.table[:, 0].tolist() == [1.0, 0.25, 1.0, 0.0, 1.0]  # -2 clamped to the lower bound
    with pytest.raises(ValueError, match=r"values must be \(batch, K\) = \(2, 1\), got \(2, 2\)"):
        w.assign(torch.tensor([0, 1]), torch.ones(2, 2))
