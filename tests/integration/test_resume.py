"""A run killed mid-way and started again ends with the results of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["kd_digits", "seeds=[0]", "methods=[amal]", "teacher.epochs=3", "student.epochs=30",
        "amal.every=2"]


def _command(out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "run.py"), *ARGS, f"output_dir={out}"]


def _result(out: Path) -> dict:
    (path,) = out.glob("kd_digits-*/results/amal-seed0.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_command(straight), check=True, env=env, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list(killed.glob("kd_digits-*/checkpoints/amal-seed0.pt")):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no student checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(killed.glob("kd_digits-*/results/amal-seed0.json")), "killed too late"

    subprocess.run(_command(killed), check=True, env=env, capture_output=True, timeout=300)
    want, got = _result(straight), _result(killed)
    assert got["best_epoch"] == want["best_epoch"]
    # Same seed, same batches, restored RNG: equal to float round-off.
    for key in ("val_acc", "test_acc", "trust_label_noisy", "trust_not_label_noisy"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
