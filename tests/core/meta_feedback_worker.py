"""Worker for test_meta_feedback: MetaFeedback steps in two processes.

``own``: each rank its own batches; ``same``: both ranks the same batches (then every average over the
processes is the one process's value, so the run must equal a single-process one). Saves what each
rank holds after the steps.
"""

import sys

import torch

from metaloss.core import MetaFeedback


def run_steps(data_seed: int, steps: int = 3) -> dict:
    """The steps of one process: the same initial networks everywhere, batches from ``data_seed``."""
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    teacher = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    feedback = MetaFeedback(teacher, torch.optim.SGD(teacher.parameters(), lr=0.1, momentum=0.9), 3,
                            epsilon0=0.3, alpha=1.0)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(data_seed)
    for _ in range(steps):
        x, y = torch.randn(24, 4, generator=g), torch.randint(0, 3, (24,), generator=g)
        feedback.step(student, optimizer, x, y)
    return {"student": student.state_dict(), "teacher": teacher.state_dict(), "ratios": feedback.ratios,
            "accumulated_feedback": feedback.accumulated_feedback}


if __name__ == "__main__":
    from toys import save_each_rank  # the script's own folder is on sys.path

    save_each_rank(run_steps, sys.argv[1], sys.argv[2])
