"""Shared test settings: small thread count and deterministic seeds."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture
def float64_default():
    """Finite differences need double precision; restore the default afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def refused(tmp_path, capsys):
    """``refused(recipe, *overrides)``: the launcher refuses them before any work and says why.

    Asserts exit code 2, a single ``run.py: config error`` line on stderr and no run
    folder; returns that line for the caller to match.
    """
    from metaloss.core.harness.launch import main as launch

    def check(recipe: str, *overrides: str) -> str:
        run_dir = tmp_path / f"refused-{recipe}"
        assert launch([recipe, *overrides, "--run-dir", str(run_dir)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("run.py: config error: "), lines
        assert not run_dir.exists(), "a refused config must leave no run folder"
        return lines[0]

    return check
