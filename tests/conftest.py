import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # test helpers (iemocap_fixture, ...)

import pytest
from iemocap_fixture import make_iemocap_tree

import merlib  # noqa: F401  (sets HF_HUB_OFFLINE before any test imports transformers)


@pytest.fixture(scope="session")
def iemocap_tree(tmp_path_factory):
    """A small IEMOCAP_full_release tree with every quirk (made once per test session)."""
    return make_iemocap_tree(tmp_path_factory.mktemp("iemocap"))


@pytest.fixture(scope="session", autouse=True)
def _feature_caches_of_temporary_corpora_are_removed():
    """Tests' corpora live in temporary folders; their feature caches (keyed by corpus path, in
    the shared data dir) would pile up run after run. The demo corpora's caches are kept."""
    import shutil

    from merlib.data.demo import default_data_dir

    features = default_data_dir() / "features"
    before = set(features.iterdir()) if features.is_dir() else set()
    yield
    for folder in (set(features.iterdir()) if features.is_dir() else set()) - before:
        if not folder.name.startswith(("demo-corpus-", "demo-speakers-")):
            shutil.rmtree(folder, ignore_errors=True)


def _espeak_or_skip():
    """espeak-ng is needed for the demo corpora: skip without it, but under CI fail instead."""
    import shutil

    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed (sudo apt-get install espeak-ng / conda install -c conda-forge espeak-ng)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; under CI=true this is a failure, not a skip")
        pytest.skip(message)


@pytest.fixture(scope="session")
def demo_corpus():
    """The default demo corpus, prepared (generated once into the shared data dir, then cached)."""
    _espeak_or_skip()
    from merlib.data import iemocap
    from merlib.data.demo import default_data_dir, generate_demo_corpus

    root = default_data_dir() / "demo-corpus"
    summary = generate_demo_corpus(root)
    report = iemocap.prepare_iemocap(root, corpus="demo")
    return {"root": root, "summary": summary, "report": report}


@pytest.fixture(scope="session")
def demo_speakers():
    _espeak_or_skip()
    from merlib.data.demo import default_data_dir, generate_demo_speakers

    root = default_data_dir() / "demo-speakers"
    return {"root": root, "summary": generate_demo_speakers(root)}


@pytest.fixture(scope="session")
def tiny_demo_corpus(tmp_path_factory):
    """A 80-utterance demo corpus (2 per class and speaker): for end-to-end folds in seconds."""
    _espeak_or_skip()
    from merlib.data import demo, iemocap

    config = demo.DemoCorpusConfig(
        per_speaker=(("ang", 2), ("hap", 2), ("neu", 2), ("sad", 2)), other_per_speaker=(), dialogs_per_session=2
    )
    root = tmp_path_factory.mktemp("tiny-demo")
    demo.generate_demo_corpus(root, config)
    return root, iemocap.prepare_iemocap(root, corpus="demo").utterances


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_demo_corpus):
    """A tiny corpus, speaker set and config; `merlib run` on fold 2 of it."""
    from merlib import runner
    from merlib.data import demo, iemocap

    corpus, _ = tiny_demo_corpus
    base = tmp_path_factory.mktemp("tiny-run")
    speakers = base / "speakers"
    demo.generate_demo_speakers(speakers, demo.DemoSpeakersConfig(speakers=6, utterances_per_speaker=4))
    manifest = iemocap.write_prepared(iemocap.prepare_iemocap(corpus, corpus="demo"), base / "manifest", corpus)
    config = base / "tiny.yaml"
    config.write_text(f"""base: {pathlib.Path("configs/demo.yaml").resolve()}
name: tiny
data: {{root: {corpus}, manifest: {manifest}}}
features: {{n_mels: 32}}
pretrain:
  corpus_root: {speakers}
  stage: {{epochs: 1, chunk_frames: [60], batch_size: 8}}
speech:
  model: {{m_channels: 4, embed_dim: 32}}
  linear_probe: {{epochs: 2, batch_size: 8, chunk_frames: [50, 80]}}
  fine_tune: {{epochs: 1, chunk_frames: [50, 80], batch_size: 8}}
text: {{epochs: 1, batch_size: 16}}
systems:
  - {{name: speech, modality: speech}}
  - {{name: speech_random, modality: speech, stages: [lp], overrides: {{speech: {{pretrained: {{source: none}}}}}}}}
  - {{name: text, modality: text}}
  - {{name: baseline_speech_stats, modality: speech, baseline: log_mel_statistics}}
  - {{name: baseline_text_tfidf, modality: text, baseline: tfidf}}
fusions:
  - {{name: fusion_weighted, method: weighted, inputs: [speech_ft, text]}}
  - {{name: fusion_weighted_logloss, method: weighted, objective: log_loss, inputs: [speech_ft, text]}}
  - {{name: fusion_znorm, method: znorm, inputs: [speech_ft, text]}}
  - {{name: baseline_fusion, method: weighted, inputs: [baseline_speech_stats, baseline_text_tfidf]}}
""")  # the claims: demo.yaml's
    runs = base / "runs"
    status = runner.run(str(config), folds=[2], runs=str(runs))
    return {"config": config, "runs": runs, "run_dir": runs / "tiny", "status": status}
