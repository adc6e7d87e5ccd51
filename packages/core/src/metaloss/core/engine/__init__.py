"""The bi-level engine and the methods built on it: what a user's own training loop calls.

torch, numpy and scikit-learn only; nothing here imports the run harness.
"""
