"""hypergradient on models from timm and Hugging Face transformers, with no model rewrite."""

import pytest
import timm
import torch
from torch.func import functional_call

import metaloss.vision.models  # noqa: F401  (registers the CIFAR ResNets in timm)
from metaloss.core import Lookahead, cross_entropy, hypergradient, mix_losses

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("float64_default")


def _objective(model, x_in, inner, x_out, outer, phi, lr):
    """L_out(theta - lr grad L_in(theta, phi)), built directly for finite differences."""
    params = dict(model.named_parameters())
    args = lambda x: ((), x) if isinstance(x, dict) else ((x,), {})  # noqa: E731

    def logits(values, x):
        a, kw = args(x)
        out = functional_call(model, {**values, **{n: b.clone() for n, b in model.named_buffers()}}, a, kw)
        return getattr(out, "logits", out)

    grads = torch.autograd.grad(inner(logits(params, x_in), phi), list(params.values()), allow_unused=True)
    new = {n: p - lr * (0 if g is None else g) for (n, p), g in zip(params.items(), grads)}
    return outer(logits(new, x_out))


def _fd(fn, phi, eps=1e-6):
    out = torch.zeros_like(phi)
    for i in range(phi.numel()):
        d = torch.zeros(phi.numel())
        d[i] = eps
        out.view(-1)[i] = (fn(phi + d.view_as(phi)) - fn(phi - d.view_as(phi))) / (2 * eps)
    return out


def _weighted(y):
    return lambda z, w: mix_losses(cross_entropy(z, y)[:, None], w)


def test_timm_model_exact_mode_matches_finite_differences():
    model = timm.create_model("cifar_resnet8", num_classes=3).double().train()
    x, xv = torch.randn(4, 3, 8, 8), torch.randn(3, 3, 8, 8)
    y, yv = torch.tensor([0, 1, 2, 1]), torch.tensor([2, 0, 1])
    w = torch.rand(4, 1)
    outer = lambda z: cross_entropy(z, yv).mean()  # noqa: E731
    got = hypergradient(model, x, _weighted(y), xv, outer, w, lookahead=Lookahead(0.5))
    want = _fd(lambda p: _objective(model, x, _weighted(y), xv, outer, p, 0.5), w)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)


def _bert(attn):
    cfg = transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=3,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation=attn,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg).double()


def _text_batches():
    g = torch.Generator().manual_seed(1)
    x = {"input_ids": torch.randint(0, 40, (4, 6), generator=g),
         "attention_mask": torch.ones(4, 6, dtype=torch.long)}
    xv = {"input_ids": torch.randint(0, 40, (3, 6), generator=g),
          "attention_mask": torch.ones(3, 6, dtype=torch.long)}
    return x, xv, torch.tensor([0, 2, 1, 1]), torch.tensor([1, 0, 2])


def test_hugging_face_model_with_dict_inputs():
    x, xv, y, yv = _text_batches()
    w = torch.rand(4, 1)
    outer = lambda z: cross_entropy(z, yv).mean()  # noqa: E731
    eager = _bert("eager")
    got = hypergradient(eager, x, _weighted(y), xv, outer, w, lookahead=0.5, mode="exact")
    want = _fd(lambda p: _objective(eager, x, _weighted(y), xv, outer, p, 0.5), w)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)

    # The fused attention kernel has no forward-mode rule: a clear error, and FD mode works.
    sdpa = _bert("sdpa")
    with pytest.raises(NotImplementedError, match="finite_difference"):
        hypergradient(sdpa, x, _weighted(y), xv, outer, w, lookahead=0.5, mode="exact")
    approx = hypergradient(sdpa, x, _weighted(y), xv, outer, w, lookahead=0.5, mode="finite_difference")
    torch.testing.assert_close(approx, want, rtol=1e-3, atol=1e-7)
