"""Optional dependencies: imported where used, with a message naming the extra that provides them.

``metaloss-core`` itself needs torch, numpy and scikit-learn only; the run
harness (launcher, config schemas, progress, plots) needs the ``[launch]`` extra.
"""

from __future__ import annotations

import importlib


def import_extra(name: str, extra: str = "launch", package: str = "metaloss-core"):
    """Import the optional module ``name``, or say which extra of ``package`` provides it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{name} is needed here and is not installed; "
                          f"pip install {package}[{extra}]") from err
