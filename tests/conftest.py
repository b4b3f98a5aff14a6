import os
import sys
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(pathlib.Path(__file__).parent))  # test helpers (iemocap_fixture, ...)

import pytest

from iemocap_fixture import make_iemocap_tree


@pytest.fixture(scope="session")
def iemocap_tree(tmp_path_factory):
    """A small IEMOCAP_full_release tree with every quirk (made once per test session)."""
    return make_iemocap_tree(tmp_path_factory.mktemp("iemocap"))


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

    config = demo.DemoCorpusConfig(per_speaker=(("ang", 2), ("hap", 2), ("neu", 2), ("sad", 2)),
                                   other_per_speaker=(), dialogs_per_session=2)
    root = tmp_path_factory.mktemp("tiny-demo")
    demo.generate_demo_corpus(root, config)
    return root, iemocap.prepare_iemocap(root, corpus="demo").utterances
