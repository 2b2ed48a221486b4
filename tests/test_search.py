"""Search what was kept: a real daemon with the real model publishes, a real subscriber records frames
and embeddings, then `edgefilter search` finds them by photo (usearch index cached in the folder) and by label."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data
from test_rules import RealModelRunning, photo_video, real_model

from edgefilter.cli import main
from edgefilter.config import ModelConfig, PublishConfig, RulesConfig, SourceConfig
from edgefilter.search import SearchError, by_image, by_label
from test_daemon import make_config


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from conftest import free_port

    tmp = tmp_path_factory.mktemp("search")
    port = free_port()
    sources = [SourceConfig(name="cat", url=str(photo_video(tmp, "chelsea", 12))),
               SourceConfig(name="coffee", url=str(photo_video(tmp, "coffee", 12)))]
    cfg = make_config(tmp, port, sources, rules=RulesConfig(keep_labels=["cat"], keep_labels_interval_s=0.0),
                      model=ModelConfig(providers="cpu"),
                      publish=PublishConfig(bind=f"tcp://127.0.0.1:{port}", embeddings=True))
    run = RealModelRunning(cfg, None)
    try:
        summary = run.sub.record(tmp / "kept", count=13)  # 12 cat frames (1 novel + 11 by the rule), 1 coffee
    finally:
        run.close()
    assert summary.frames == 13
    return tmp / "kept"


def test_subscriber_stores_embeddings_beside_frames(recorded):
    lines = [json.loads(x) for x in (recorded / "manifest.jsonl").read_text().splitlines()]
    for line in lines:
        vector = np.load(recorded / line["embedding_file"])
        assert vector.shape == (line["embedding_dim"],) and (recorded / line["file"]).is_file()
        assert line["embedding_file"].removesuffix(".npy") == line["file"].removesuffix(".jpg")


def test_search_by_photo_finds_the_coffee_frame_and_caches_the_index(recorded, tmp_path):
    query = tmp_path / "coffee.png"
    cv2.imwrite(str(query), skimage.data.coffee()[:, :, ::-1])
    embedder = real_model(None)
    best = by_image(recorded, query, 3, embedder)
    assert best[0][0].source == "coffee" and best[0][1] > 0.9
    assert all(item.source == "cat" for item, _ in best[1:]) and best[1][1] < best[0][1]
    assert (recorded / "search.usearch").is_file() and (recorded / "search.json").is_file()
    assert by_image(recorded, query, 3, embedder) == best  # from the cached index


def test_search_by_label_and_group_word(recorded):
    cats = by_label(recorded, "cat", 5)
    assert len(cats) == 5 and all(item.source == "cat" and score > 0.5 for item, score in cats)
    assert [item.source for item, _ in by_label(recorded, "espresso", 5)] == ["coffee"]
    assert by_label(recorded, "truck", 5) == []
    with pytest.raises(SearchError, match="unknown label 'dgo'; nearest: .*'dog'"):
        by_label(recorded, "dgo", 5)


def test_search_cli_prints_json_lines_and_writes_a_contact_sheet(recorded, tmp_path, capsys):
    sheet = tmp_path / "sheet.html"
    assert main(["search", str(recorded), "--label", "espresso", "-k", "2", "--html", str(sheet)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(out) == 1 and set(out[0]) == {"path", "source", "ts", "score"} and out[0]["source"] == "coffee"
    assert out[0]["path"].endswith(".jpg") and "<img" in sheet.read_text()
    assert main(["search", str(tmp_path), "--label", "cat"]) == 64  # no manifest: a clear error, no traceback
    assert "manifest.jsonl not found" in capsys.readouterr().err
