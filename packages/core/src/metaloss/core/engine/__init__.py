"""The bi-level engine and the methods built on it: what a user's own training loop calls.

torch, numpy and scikit-learn only; nothing here imports the run harness.
"""

# torch.func.functional_call imports TorchDynamo on its first call. When that first import happens
# after a gloo process group exists (``Accelerator()`` before the first look-ahead), Dynamo keeps
# references to the group, ``destroy_process_group`` no longer frees it, its threads outlive the
# interpreter and the process aborts at exit ("terminate called without an active exception").
# Importing Dynamo here, before a user's loop creates the group, keeps the teardown clean; the
# first look-ahead would pay this import anyway.
import torch._dynamo  # noqa: F401
