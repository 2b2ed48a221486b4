"""The CLIP path end to end: a tiny deterministic pair built here (ONNX graphs whose meaning is known),
and an open_clip architecture with random weights exported by models/export_clip.py in a fixture.
Loader, tokenizer, prompt rules and messages are the real ones; the daemon runs real video and ZeroMQ."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from conftest import wait_for
from test_daemon import make_config
from test_rules import RealModelRunning, run_to_end
from videos import make_video

from edgefilter.clip import ClipPair, PromptMatcher
from edgefilter.config import ModelConfig, PromptConfig, RulesConfig, SourceConfig, load_config, parse_config
from edgefilter.errors import ConfigError, ModelError
from edgefilter.model import file_sha256
from edgefilter.tokenizer import ClipTokenizer

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ROOT / "models" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
sys.path.insert(0, str(ROOT / "models"))
from export_clip import export_clip, import_open_clip  # noqa: E402

COLOURS = {"red": 0, "green": 1, "blue": 2}


def write_colour_pair(folder: Path) -> Path:
    """A pair whose space is colour: an image embeds as its mean RGB minus 85 (a saturated frame points
    along its colour), a text as the sum of its words' rows, where only 'red', 'green' and 'blue' have
    one (a unit axis)."""
    tokenizer = ClipTokenizer(VOCAB)
    image = helper.make_graph(
        [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=0),
         helper.make_node("Sub", ["mean", "offset"], ["embedding"])],
        "colour_image", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
         numpy_helper.from_array(np.array([85.0], np.float32), "offset")])
    table = np.zeros((tokenizer.vocab_size, 3), np.float32)
    for word, axis in COLOURS.items():
        table[tokenizer.encode(word)[0], axis] = 1.0
    text = helper.make_graph(
        [helper.make_node("Gather", ["table", "tokens"], ["rows"]),
         helper.make_node("ReduceSum", ["rows", "seq_axis"], ["embedding"], keepdims=0)],
        "colour_text", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", 77])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([1], np.int64), "seq_axis")])
    folder.mkdir(parents=True, exist_ok=True)
    for name, graph in (("image", image), ("text", text)):
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9),
                  folder / f"{name}.onnx")
    (folder / VOCAB.name).write_bytes(VOCAB.read_bytes())
    card = {"id": "colour-pair@test", "kind": "clip",
            "image": {"file": "image.onnx", "sha256": file_sha256(folder / "image.onnx"),
                      "input": {"name": "images", "size": [8, 8], "layout": "NHWC", "dtype": "uint8", "colour": "RGB"},
                      "output": {"name": "embedding", "dim": 3, "normalised": False}},
            "text": {"file": "text.onnx", "sha256": file_sha256(folder / "text.onnx"),
                     "input": {"name": "tokens", "dtype": "int64", "context_length": 77},
                     "output": {"name": "embedding", "dim": 3, "normalised": False}},
            "tokenizer": {"kind": "clip-bpe", "vocab": VOCAB.name, "sha256": file_sha256(VOCAB), "context_length": 77}}
    (folder / "pair.json").write_text(json.dumps(card))
    return folder / "pair.json"


@pytest.fixture(scope="module")
def colour_pair(tmp_path_factory) -> Path:
    return write_colour_pair(tmp_path_factory.mktemp("colour"))


@pytest.fixture(scope="module")
def random_clip(tmp_path_factory) -> Path:
    """open_clip's ViT+transformer CLIP, one layer each at tiny widths, random weights, exported by the script."""
    folder = tmp_path_factory.mktemp("clip")
    arch = folder / "tinyclip.json"
    arch.write_text(json.dumps({"embed_dim": 32,
                                "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
                                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 1,
                                             "layers": 1}}))
    return export_clip("tinyclip", None, folder / "out", model_config=arch)


def test_tokenizer_equals_open_clips():
    texts = ["a photo of a red car", "A DOG running on the grass!!", "forklift_truck 42 at the dock's gate",
             "café &amp; crème brûlée", "word " * 100]
    ours = ClipTokenizer(VOCAB)(texts)
    assert np.array_equal(ours, import_open_clip().tokenize(texts).numpy())
    assert ours[4, -1] == ClipTokenizer(VOCAB).end_id  # cut to the context, the end token kept


def test_colour_pair_scores_prompts_by_meaning(colour_pair):
    pair = ClipPair(colour_pair, providers="cpu")
    matcher = PromptMatcher(pair)
    matcher.set_prompts([PromptConfig("a red thing", 0.5), PromptConfig("green", 0.5)])
    frames = np.zeros((2, 224, 224, 3), np.uint8)
    frames[0, ..., 0] = 255  # red
    frames[1, ..., 1] = 255  # green
    scores = matcher.scores(frames)
    assert scores[0, 0] > 0.8 and scores[0, 1] < 0 and scores[1, 1] > 0.8 and scores[1, 0] < 0


def test_prompts_are_embedded_once_per_set_not_per_frame(colour_pair):
    pair = ClipPair(colour_pair, providers="cpu")
    calls = []
    embed_texts = pair.embed_texts
    pair.embed_texts = lambda texts: calls.append(list(texts)) or embed_texts(texts)
    matcher = PromptMatcher(pair)
    matcher.set_prompts([PromptConfig("red", 0.5)])
    for _ in range(3):
        matcher.scores(np.zeros((4, 224, 224, 3), np.uint8))
    assert calls == [["red"]]


def test_card_checks_name_the_file_and_field(colour_pair, tmp_path):
    card = json.loads(colour_pair.read_text())
    folder = colour_pair.parent
    bad = dict(card, tokenizer=dict(card["tokenizer"], sha256="0" * 64))
    (folder / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match=r"checksum mismatch.*bpe_simple_vocab"):
        ClipPair(folder / "bad.json", providers="cpu")
    (folder / "kind.json").write_text(json.dumps(dict(card, kind="other")))
    with pytest.raises(ModelError, match=r"kind.json: field 'kind' must be 'clip'"):
        ClipPair(folder / "kind.json", providers="cpu")


def test_config_needs_a_clip_card_for_prompts():
    text = "sources:\n  - {name: a, url: x.mp4}\nrules:\n  keep_prompts:\n    - {text: a forklift, threshold: 0.3}\n"
    with pytest.raises(ConfigError, match="rules.clip_card: is required by rules.keep_prompts"):
        parse_config(text)
    cfg = parse_config(text + "  clip_card: clip/pair.json\n")
    assert cfg.rules.keep_prompts == [PromptConfig("a forklift", 0.3)]


def colour_video(tmp_path, name: str, channel: int, frames: int = 10) -> Path:
    rng = np.random.default_rng(channel)
    base = np.full((120, 160, 3), 30, np.int16)
    base[..., 2 - channel] = 230  # BGR on disk
    noisy = [np.clip(base + rng.normal(0, 2, base.shape).round(), 0, 255).astype(np.uint8) for _ in range(frames)]
    return make_video(tmp_path / f"{name}.avi", noisy, fps=25)


def run_daemon(tmp_path, port, card: Path, prompts: list[PromptConfig]):
    sources = [SourceConfig(name="red", url=str(colour_video(tmp_path, "red", 0))),
               SourceConfig(name="green", url=str(colour_video(tmp_path, "green", 1)))]
    cfg = make_config(tmp_path, port, sources, model=ModelConfig(providers="cpu"),
                      rules=RulesConfig(keep_prompts=prompts, keep_prompts_interval_s=0.0, clip_card=str(card)))
    return run_to_end(cfg)


def test_daemon_keeps_frames_matching_a_prompt(tmp_path, port, colour_pair):
    run, got = run_daemon(tmp_path, port, colour_pair, [PromptConfig("red", 0.5)])
    assert [m.reason for m in got["red"]] == ["first"] + ["prompt"] * 9
    assert all(m.header["rule"] == "keep_prompts:red" for m in got["red"][1:])
    assert all(m.header["prompts"][0]["text"] == "red" and m.header["prompts"][0]["score"] > 0.8
               for m in got["red"])
    assert [m.reason for m in got["green"]] == ["first"] and "prompts" not in got["green"][0].header
    assert run.value("edgefilter_rule_frames_total", source="red", rule="keep_prompts:red", action="kept") == 9


def test_daemon_runs_the_random_weight_open_clip_export(tmp_path, port, random_clip):
    card = json.loads(random_clip.read_text())
    assert card["tokenizer"]["sha256"] == file_sha256(VOCAB) and card["image"]["output"]["dim"] == 32
    # Random weights match nothing in particular: a threshold of -1 makes every frame match, which proves
    # the loader, tokenizer, encoders and rules run; real thresholds need real weights.
    run, got = run_daemon(tmp_path, port, random_clip, [PromptConfig("a forklift", -1.0)])
    for msgs in got.values():
        assert [m.reason for m in msgs] == ["first"] + ["prompt"] * 9
        assert all(-1.0 <= m.header["prompts"][0]["score"] <= 1.0 for m in msgs)


def test_search_by_text_ranks_stored_frames_with_the_pair_and_caches_its_index(colour_pair, tmp_path, capsys):
    import cv2

    from edgefilter.cli import main

    folder = tmp_path / "kept"
    (folder / "cam").mkdir(parents=True)
    with open(folder / "manifest.jsonl", "w") as manifest:
        for i, (name, channel) in enumerate(COLOURS.items()):
            bgr = np.full((60, 80, 3), 30, np.uint8)
            bgr[..., 2 - channel] = 230
            cv2.imwrite(str(folder / "cam" / f"{name}.jpg"), bgr)
            manifest.write(json.dumps({"file": f"cam/{name}.jpg", "source": "cam", "ts": float(i), "model": "m"}) + "\n")
    argv = ["search", str(folder), "--text", "green", "-k", "3", "--clip-card", str(colour_pair)]
    assert main(argv) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["path"]).name for x in lines][0] == "green.jpg" and lines[0]["score"] > 0.8
    assert (folder / "search-clip.usearch").is_file()
    assert main(argv) == 0 and [json.loads(x) for x in capsys.readouterr().out.splitlines()] == lines
    assert main(["search", str(folder), "--text", "green"]) == 64  # no pair named: a clear error
    assert "--text needs a CLIP pair" in capsys.readouterr().err


def test_reload_embeds_the_new_prompts_once_and_refuses_prompts_without_a_pair(tmp_path, port, colour_pair):
    path = tmp_path / "c.yaml"
    text = (f"sources: [{{name: live, url: 'demo://?fps=10&width=160&height=120', realtime: true}}]\n"
            f"publish: {{bind: 'tcp://127.0.0.1:{port}'}}\nmetrics: {{bind: null}}\nmodel: {{providers: cpu}}\n")
    path.write_text(text + f"rules: {{clip_card: '{colour_pair}', keep_prompts: [{{text: red}}]}}\n")
    run = RealModelRunning(load_config(path), None, config_path=str(path))
    try:
        assert wait_for(lambda: run.daemon.prompts is not None, 30)
        calls = []
        embed_texts = run.daemon.prompts.pair.embed_texts
        run.daemon.prompts.pair.embed_texts = lambda texts: calls.append(list(texts)) or embed_texts(texts)
        path.write_text(text + f"rules: {{clip_card: '{colour_pair}', keep_prompts: [{{text: green}}, {{text: blue}}]}}\n")
        assert run.daemon.reload() is True
        assert run.daemon.prompts.texts == ["green", "blue"] and calls == [["green", "blue"]]
        assert run.daemon.reload() is True and len(calls) == 1  # unchanged prompts are not embedded again
    finally:
        run.close()
    path.write_text(text)  # no prompts at start: adding them needs the pair loaded, i.e. a restart
    run = RealModelRunning(load_config(path), None, config_path=str(path))
    try:
        assert wait_for(lambda: run.daemon.rules is not None, 30)
        path.write_text(text + f"rules: {{clip_card: '{colour_pair}', keep_prompts: [{{text: red}}]}}\n")
        assert run.daemon.reload() is False and run.daemon.prompts is None
    finally:
        run.close()
