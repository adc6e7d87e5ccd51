"""Small models and data shared by the core tests."""

import torch
from torch import nn


class MLP(nn.Module):
    """A 2-layer MLP with timm's features / head split."""

    def __init__(self, d_in=3, hidden=8, num_classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh())
        self.fc = nn.Linear(hidden, num_classes)

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, h, pre_logits=False):
        return h if pre_logits else self.fc(h)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.fc(self.body(x))


def gaussian_blobs(n, num_classes=4, dim=10, seed=0, spread=1.0):
    """Linearly separable-ish class clusters."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(1234)) * 2.0
    y = torch.randint(0, num_classes, (n,), generator=g)
    x = centres[y] + spread * torch.randn(n, dim, generator=g)
    return x, y


def launch_two_gloo_processes(script, *args: str, port: int):
    """Run ``script`` under ``accelerate launch`` as two gloo processes on the CPU (one thread each)."""
    import os
    import shutil
    import subprocess
    import sys

    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or "accelerate"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
           str(script), *args]
    return subprocess.run(cmd, env=env, timeout=240, capture_output=True, text=True)


def save_each_rank(run, mode: str, out_prefix: str) -> None:
    """A two-process worker's body: each rank runs ``run(data_seed)`` and saves what it returns.

    ``own``: rank r draws its batches from seed 100 + r; ``same``: both ranks from seed 100 (then
    every average over the processes is one process's value).
    """
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    held = run(100 + (acc.process_index if mode == "own" else 0))
    torch.save(held, f"{out_prefix}-rank{acc.process_index}.pt")
    acc.end_training()


def own_same_and_alone(worker, entry: str, tmp_path, ports: tuple[int, int]):
    """Run ``worker`` (which calls ``save_each_rank``) in both modes; return each mode's two ranks'
    states and what ``worker.<entry>(100)`` holds when run here, in one process."""
    import importlib.util

    states = {}
    for mode, port in zip(("own", "same"), ports):
        done = launch_two_gloo_processes(worker, mode, str(tmp_path / mode), port=port)
        assert done.returncode == 0, done.stderr[-3000:]
        states[mode] = [torch.load(tmp_path / f"{mode}-rank{r}.pt") for r in (0, 1)]
    spec = importlib.util.spec_from_file_location(worker.stem, worker)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return states["own"], states["same"], getattr(module, entry)(100)
