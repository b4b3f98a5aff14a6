"""The paper's recipe on a corpus that is not IEMOCAP: an MSP-Podcast-layout fixture (eight
classes, released Train / Development / Test1 / Test2 splits, unknown speakers) prepared with
`merlib prepare msp-podcast` and run with configs/msp_podcast.yaml, scaled down: speech
(probe, fine-tuning), text, both fusions, claims, report, and the workbook notebooks, unchanged."""

import json
import pathlib

import pandas as pd
import pytest

from merlib import runner
from merlib.cli import main
from merlib.config import load_config
from merlib.data.manifest import read_manifest
from tests.msp_podcast_fixture import CLASSES, make_msp_podcast_tree

CONFIG = pathlib.Path(__file__).resolve().parent.parent / "configs" / "msp_podcast.yaml"


@pytest.fixture(scope="module")
def msp_run(tmp_path_factory):
    from merlib.data import demo

    base = tmp_path_factory.mktemp("msp-run")
    info = make_msp_podcast_tree(base / "MSP-Podcast")
    assert main(["prepare", "msp-podcast", str(info.root), "--out", str(base / "manifest")]) == 0
    speakers = base / "speakers"
    demo.generate_demo_speakers(speakers, demo.DemoSpeakersConfig(speakers=6, utterances_per_speaker=4))
    config = base / "msp_tiny.yaml"
    config.write_text(f"""base: {CONFIG}
name: msp_tiny
data: {{root: {info.root}, manifest: {base / "manifest" / "utterances.jsonl"}}}
features: {{n_mels: 32}}
augment: {{copies: 1}}
pretrain:
  corpus_root: {speakers}
  augment_copies: 0
  stage: {{epochs: 1, chunk_frames: [60], batch_size: 8}}
speech:
  model: {{m_channels: 4, embed_dim: 32}}
  probe_chunks: 1
  linear_probe: {{epochs: 2, batch_size: 8, chunk_frames: [50, 80]}}
  fine_tune: {{epochs: 1, chunk_frames: [50, 80], batch_size: 8}}
text: {{model: minilm-offline, epochs: 1, batch_size: 16}}
runtime: {{device: cpu, precision: fp32}}
""")
    runs = base / "runs"
    status = runner.run(str(config), folds=[1], runs=str(runs))
    return {"info": info, "config": config, "run_dir": runs / "msp_tiny", "status": status, "base": base}


def test_the_manifest_keeps_msp_podcast_as_released(msp_run):
    records = read_manifest(msp_run["base"] / "manifest" / "utterances.jsonl")
    assert sorted(r.id for r in records) == sorted(msp_run["info"].kept_ids)
    assert {r.split for r in records} == {"Train", "Development", "Test1", "Test2"}
    assert {r.label for r in records} == set(CLASSES) and all(r.fold is None for r in records)
    assert any(r.speaker == "" for r in records) and all("arousal" in r.attributes for r in records)


def test_a_tiny_run_on_eight_classes_with_released_splits(msp_run):
    run_dir = msp_run["run_dir"]
    assert msp_run["status"] == 0
    for name in ("00_data.ipynb", "fold1/20_speech_fold.speech.ipynb", "fold1/30_text_fold.text.ipynb",
                 "report.html", "summary.csv", "claims.csv", "test_sets.csv"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    scores = pd.read_csv(run_dir / "fold1" / "fusion_weighted_scores.csv")
    assert list(scores.columns) == ["id", "split", "label", *CLASSES]  # the run's classes, in its order
    manifest = {r.id: r.split for r in read_manifest(msp_run["base"] / "manifest" / "utterances.jsonl")}
    assert {manifest[i] for i in scores.query("split == 'test'")["id"]} == {"Test1", "Test2"}
    assert {manifest[i] for i in scores.query("split == 'holdout'")["id"]} == {"Development"}
    summary = pd.read_csv(run_dir / "summary.csv").set_index("system")
    assert {"ua", "wa", "f1"} <= set(summary.columns)
    assert list(summary.index) == ["speech_lp", "speech_ft", "text", "fusion_weighted", "fusion_znorm"]
    assert ((summary["f1"] >= 0) & (summary["f1"] <= 100)).all() and "paper_ua" not in summary.columns
    each = pd.read_csv(run_dir / "test_sets.csv")
    assert set(each["test_set"]) == {"Test1", "Test2"} and (each["n"] == 2 * len(CLASSES)).all()
    # the text fixture's words name their class: the fine-tuned text model is far above chance
    assert summary.loc["text", "ua"] > 100 / len(CLASSES)
    history = json.loads((run_dir / "fold1" / "speech_ft_history.json").read_text())
    probe = history["fingerprint"]["parts"]["probe"]
    assert probe["loss"] == "weighted_ce" and probe["data"]["labels"] == list(CLASSES)
    report = (run_dir / "report.html").read_text()
    assert "msp_podcast, released splits (test: Test1, Test2), 8 classes" in report
    assert "Each test set on its own" in report and "IEMOCAP, leave-one-session-out" not in report
    claims = pd.read_csv(run_dir / "claims.csv")
    assert list(claims["claim"]) == [c.name for c in load_config(msp_run["config"]).claims]


def test_the_workbook_notebooks_run_unchanged_on_it(msp_run, tmp_path):
    from merlib.execution import execute

    run_dir = msp_run["run_dir"]
    parameters = {"config": str(run_dir / "config.yaml"), "run_dir": str(run_dir)}
    shown = execute("40_fusion.ipynb", tmp_path / "40_fusion.ipynb", parameters).read_text()
    assert "image/png" in shown and "Test2" in shown
    execute("50_explore.ipynb", tmp_path / "50_explore.ipynb", parameters | {"fold": 1})  # every explorer


def test_folds_command_prints_the_released_splits(msp_run, capsys):
    assert main(["folds", str(msp_run["base"] / "manifest"), "--config", str(msp_run["config"])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("released folds of") and "Development" in out[0]
    assert out[1].split()[3:11] == list(CLASSES)
    sizes = {line.split()[1]: int(line.split()[2]) for line in out[2:]}
    assert sizes == {"train": 6 * len(CLASSES), "holdout": 2 * len(CLASSES), "test": 4 * len(CLASSES)}


def test_label_map_merges_classes_and_other_labels_are_counted_or_refused(msp_run):
    from merlib.corpus import with_run_labels
    from merlib.data.manifest import ManifestError

    manifest = msp_run["base"] / "manifest" / "utterances.jsonl"
    records = read_manifest(manifest)
    config = load_config(msp_run["config"], overrides={"data": {
        "labels": ["A", "H", "S", "N"], "label_map": {"U": "H", "F": "S", "D": "A", "C": "A"}}})  # fmt: skip
    merged = with_run_labels(records, config, manifest)
    assert len(merged) == len(records) and {r.label for r in merged} == {"A", "H", "S", "N"}
    assert {r.raw_label for r in merged if r.label == "A"} == {"A", "D", "C"}  # the annotation is kept
    config = load_config(msp_run["config"], overrides={"data": {"labels": ["A", "H"]}})
    with pytest.warns(UserWarning, match=r"left out, their labels not in data.labels \(A, H\): C 12, D 12"):
        assert {r.label for r in with_run_labels(records, config, manifest)} == {"A", "H"}
    config = load_config(msp_run["config"], overrides={"data": {"labels": ["ang", "hap"]}})
    with pytest.raises(ManifestError, match=r"no utterance has a label of data.labels.*Set data.labels"):
        with_run_labels(records, config, manifest)


def test_test_speakers_seen_in_training_are_refused_or_counted_in_the_report(msp_run, tmp_path):
    import dataclasses

    from merlib.data.folds import LeakageError
    from merlib.data.manifest import write_manifest
    from merlib.report import data_summary

    records = read_manifest(msp_run["base"] / "manifest" / "utterances.jsonl")
    train_speakers = sorted({r.speaker for r in records if r.split == "Train" and r.speaker})
    shared = [dataclasses.replace(r, speaker=train_speakers[i % len(train_speakers)]) if r.split == "Test1" else r
              for i, r in enumerate(records)]  # fmt: skip
    manifest = write_manifest(shared, tmp_path / "utterances.jsonl")
    strict = load_config(msp_run["config"], overrides={"data": {"manifest": str(manifest)}})
    with pytest.raises(LeakageError, match="in both train and test"):
        data_summary(strict, [1])
    lenient = load_config(
        msp_run["config"], overrides={"data": {"manifest": str(manifest), "disjoint_speakers": False}}
    )
    with pytest.warns(UserWarning, match="test speaker.s. also in training"):
        _, sizes = data_summary(lenient, [1])
    assert sizes["test speakers also in training"].tolist() == [len(train_speakers)]
