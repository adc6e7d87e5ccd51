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
