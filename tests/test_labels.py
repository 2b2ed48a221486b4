"""Labels from the default model's classifier output, on real photos with the real ONNX graph."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from edgefilter.labels import Vocabulary, imagenet, vocabulary_for
from edgefilter.model import Embedder
from edgefilter.preprocess import preprocess

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(ROOT / "models" / "efficientnet_lite0_regions.onnx", providers="cpu")


def photo(name: str) -> np.ndarray:
    rgb = getattr(skimage.data, name)()
    return preprocess(rgb[:, :, ::-1].copy(), (224, 224), "RGB")  # the daemon's path: BGR frame in


def test_default_model_labels_chelsea_and_coffee_right(embedder):
    result = embedder.embed(np.stack([photo("chelsea"), photo("coffee")]))
    vocab = vocabulary_for(embedder.class_names)
    cat, coffee = (vocab.top(p) for p in result.probabilities)
    assert cat[0]["name"] == "Egyptian Mau" and cat[0]["score"] > 0.5  # ImageNet class 285
    assert coffee[0]["name"] == "espresso" and coffee[0]["score"] > 0.5  # class 967
    assert len(cat) == 5 and [x["score"] for x in cat] == sorted((x["score"] for x in cat), reverse=True)
    # The group word sums its classes: the tabby/tiger cat runners-up make "cat" surer than the top class.
    assert vocab.score(result.probabilities[0], "cat") > cat[0]["score"]
    assert vocab.score(result.probabilities[1], "cat") < 0.01
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, atol=1e-4)


def test_card_names_the_classes_and_groups_apply(embedder):
    assert embedder.has_classes and len(embedder.class_names) == 1000
    assert vocabulary_for(embedder.class_names) is imagenet()
    assert embedder.embed(np.zeros((3, 224, 224, 3), np.uint8)).probabilities.shape == (3, 1000)


def test_unknown_label_names_its_nearest_valid_names():
    vocab = imagenet()
    assert vocab.problem("Sports Car") is None and vocab.problem("vehicle") is None
    message = vocab.problem("dgo")
    assert "'dog'" in message and "unknown label 'dgo'" in message
    assert "vehicle" in vocab.problem("vehicel")


def test_groups_are_sums_and_a_custom_vocabulary_has_no_groups():
    vocab = Vocabulary(["a", "b", "c"], {"ab": [0, 1]})
    p = np.array([0.2, 0.3, 0.5], np.float32)
    assert vocab.score(p, "AB") == pytest.approx(0.5) and vocab.score(p, "c") == pytest.approx(0.5)
    assert [x["name"] for x in vocab.top(p, k=2)] == ["c", "b"]
    assert vocabulary_for(["x", "y"]).groups == {}
    # Every group points at real classes; the coarse words a camera user writes are there.
    base = imagenet()
    for word in ("vehicle", "car", "truck", "bus", "bicycle", "motorcycle", "dog", "cat", "bird", "boat"):
        assert word in base.groups and all(0 <= i < 1000 for i in base.groups[word])
    assert "person" not in base  # ImageNet-1k has no person class


def test_card_whose_class_names_do_not_fit_the_output_is_refused(tmp_path):
    from edgefilter.errors import ModelError

    card = json.loads((ROOT / "models" / "efficientnet_lite0_regions.json").read_text())
    card["file"] = str(ROOT / "models" / card["file"])
    card["classes"]["names"] = card["classes"]["names"][:999]
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"output 'probabilities' has shape \['batch', 1000\], card field "
                                         r"'classes.names' says 999"):
        Embedder(card["file"], tmp_path / "card.json", providers="cpu")
    card["classes"]["names"] = []
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="'classes.names' must be a non-empty list of names"):
        Embedder(card["file"], tmp_path / "card.json", providers="cpu")
