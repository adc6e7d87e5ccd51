"""Optional dependencies: imported where used, with a message naming the extra that provides them.

``metaloss-core`` itself needs torch, numpy and scikit-learn only; the run
harness (launcher, config schemas, progress, plots) needs the ``[launch]`` extra.
"""

from __future__ import annotations

import importlib


def import_extra(name: str, extra: str = "launch"):
    """Import the optional module ``name``, or say which ``metaloss-core`` extra provides it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            f"{name} is needed by the metaloss run harness; pip install metaloss-core[{extra}]"
        ) from err
