"""metaloss-core: the bi-level engine for learning how to weight, mix and shape losses.

Two parts: ``metaloss.core.engine`` (the bi-level primitive, per-example tables,
losses and the methods built on them; torch, numpy and scikit-learn only) and
``metaloss.core.harness`` (launcher, config, run folder, epoch loop, report;
the ``[launch]`` extra). ``metaloss.core.checks`` holds the input validation
every package uses. Every public name of the engine is importable from here.
"""

from .engine.amal import AMAL, trust_by_group, trust_in_guides
from .engine.batches import IndexedDataset, epoch_batches
from .engine.debiasing import DebiasingWeights, composition_weights, fidelity_weights
from .engine.dynamic_loss import DynamicLossNetwork, OneVsOne, one_vs_one
from .engine.hypergradient import Lookahead, hypergradient, last_layer_hypergradient, preserved_buffers
from .engine.instance_weights import InstanceWeights
from .engine.l2t_dln import L2TDLN, StudentSteps, TeachingSchedule, TeachStep
from .engine.losses import (
    cross_entropy,
    dropout_mix_weights,
    fixed_mix_weights,
    generalized_cross_entropy,
    kd_loss,
    mix_losses,
)
from .engine.lstm_teacher import LSTMTeacher, preprocess_gradient
from .engine.meta_feedback import FeedbackStep, MetaFeedback
from .engine.reweighting import MetaWeightNet, l2r_weights
from .engine.selection import coteaching_keep_ratio, small_loss_mask, small_loss_mask_per_class
from .engine.similarity_weights import class_centres, similarity_weights
from .engine.split import LinearHeadModel, Split, resolve_split
from .engine.unrolled import Unrolled, unroll, unrolled_hypergradient, unrolled_logits
from .harness.epochs import ValidationSelector, train_epochs

__all__ = [
    "AMAL",
    "DebiasingWeights",
    "DynamicLossNetwork",
    "FeedbackStep",
    "IndexedDataset",
    "InstanceWeights",
    "L2TDLN",
    "LSTMTeacher",
    "LinearHeadModel",
    "Lookahead",
    "MetaFeedback",
    "MetaWeightNet",
    "OneVsOne",
    "Split",
    "StudentSteps",
    "TeachStep",
    "TeachingSchedule",
    "Unrolled",
    "ValidationSelector",
    "class_centres",
    "composition_weights",
    "coteaching_keep_ratio",
    "cross_entropy",
    "dropout_mix_weights",
    "epoch_batches",
    "fidelity_weights",
    "fixed_mix_weights",
    "generalized_cross_entropy",
    "hypergradient",
    "kd_loss",
    "l2r_weights",
    "last_layer_hypergradient",
    "mix_losses",
    "one_vs_one",
    "preprocess_gradient",
    "preserved_buffers",
    "resolve_split",
    "similarity_weights",
    "small_loss_mask",
    "small_loss_mask_per_class",
    "train_epochs",
    "trust_by_group",
    "trust_in_guides",
    "unroll",
    "unrolled_hypergradient",
    "unrolled_logits",
]
