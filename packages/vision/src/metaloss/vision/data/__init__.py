"""Datasets for metaloss-vision."""

from .digits import DigitsSplits, load_digits_splits

__all__ = ["DigitsSplits", "load_digits_splits"]
