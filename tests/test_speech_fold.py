"""A tiny end-to-end speech fold: pretrain on a tiny speaker set, linear probe, fine-tune,
scores written per the contract; a rerun skips what is done."""

import json

import pytest

from merlib.config import load_config
from merlib.data import demo
from merlib.data.folds import make_fold
from merlib.data.speakers import read_speaker_manifest
from merlib.scores import read_scores
from merlib.train.speaker import pretrain_speakers
from merlib.train.speech import run_speech_fold

TINY_SPEAKERS = demo.DemoSpeakersConfig(speakers=6, utterances_per_speaker=4)
TINY_RUN = {
    "features": {"n_mels": 32},
    "pretrain": {"stage": {"epochs": 1, "chunk_frames": [60], "batch_size": 8}, "augment_copies": 1},
    "speech": {
        "model": {"m_channels": 4, "embed_dim": 32},
        "linear_probe": {"epochs": 2, "batch_size": 8},
        "fine_tune": {"epochs": 1, "chunk_frames": [50, 80], "batch_size": 8, "max_grad_norm": 5.0},
    },
}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:hold-out")
def test_tiny_speech_fold_end_to_end(tmp_path, tiny_demo_corpus):
    config = load_config("configs/demo.yaml", overrides=TINY_RUN)
    speakers = tmp_path / "speakers"
    demo.generate_demo_speakers(speakers, TINY_SPEAKERS)
    run = tmp_path / "run"
    backbone = pretrain_speakers(
        config,
        read_speaker_manifest(speakers / "speakers.jsonl"),
        speakers,
        run / "pretrain",
        tmp_path / "cache",
        progress=False,
    )
    assert backbone.is_file()
    history = json.loads((run / "pretrain" / "pretrain_history.json").read_text())
    assert history["speakers"] == 6 and len(history["history"]) == 1

    corpus, utterances = tiny_demo_corpus
    fold = make_fold(utterances, 2)
    results = run_speech_fold(config, "speech", fold, corpus, run, tmp_path / "cache", progress=False)
    assert set(results) == {"lp", "ft"}
    for stage in ("lp", "ft"):
        scores = read_scores(run / "fold2" / f"speech_{stage}_scores.csv")
        assert len(scores) == len(fold.holdout) + len(fold.test)
        assert set(scores.loc[scores.split == "test", "id"]) == {u.id for u in fold.test}
        summary = json.loads((run / "fold2" / f"speech_{stage}_history.json").read_text())
        assert 0 <= summary["test_ua"] <= 1 and summary["best_epoch"] is not None
    assert len(results["lp"]["history"]) == 2
    # the probe trained the new segment layers and head only: every frame-level tensor of its model
    # (weights and batch-norm statistics) is the pretrained one; fine-tuning moved them
    import torch

    pretrained = torch.load(backbone, weights_only=True)
    probed, tuned = (
        torch.load(run / "fold2" / f"speech_{stage}_model.pt", weights_only=True) for stage in ("lp", "ft")
    )
    frame = [key for key in pretrained if not key.startswith("embedding.")]
    assert frame and all(torch.equal(probed[f"backbone.{key}"], pretrained[key]) for key in frame)
    assert not all(torch.equal(tuned[f"backbone.{key}"], pretrained[key]) for key in frame)
    # a rerun finds both stages done and trains nothing
    assert run_speech_fold(config, "speech", fold, corpus, run, tmp_path / "cache", progress=False) == {}
