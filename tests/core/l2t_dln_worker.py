"""Worker for test_l2t_dln: two L2TDLN rounds in two processes.

``own``: each rank its own batches; ``same``: both ranks the same batches (then every average over
the processes is the one process's value, so the run must equal a single-process one). Saves what
each rank holds after the rounds.
"""

import sys

import torch

from metaloss.core import L2TDLN, DynamicLossNetwork


def run_rounds(data_seed: int, rounds: int = 2, unroll_steps: int = 2) -> dict:
    """The rounds of one process: the same initial networks everywhere, batches from ``data_seed``."""
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    l2t = L2TDLN(DynamicLossNetwork(seed=0))
    g = torch.Generator().manual_seed(data_seed)

    def batch(n):
        return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)

    for _ in range(rounds):
        l2t.teach(student, optimizer, [batch(12) for _ in range(unroll_steps)], batch(20))
    return {"student": student.state_dict(), "dln": l2t.dln.state_dict(), "lstm": l2t.lstm.state_dict(),
            "lstm_state": torch.cat([h for pair in l2t.lstm_state for h in pair], dim=1)}


if __name__ == "__main__":
    from toys import save_each_rank  # the script's own folder is on sys.path

    save_each_rank(run_rounds, sys.argv[1], sys.argv[2])
