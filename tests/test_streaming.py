"""Memory that does not grow with the corpus: features live in shards on disk (merlib.audio.feature_store)
and are read when a batch needs them."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from merlib.audio.feature_store import FeatureCache, StoredFeatures
from merlib.config import paper_config

REPO = pathlib.Path(__file__).resolve().parents[1]
RATE = 16000


def write_speaker_corpus(root: pathlib.Path, utterances: int, speakers: int = 20, seconds: float = 0.5) -> None:
    """A VoxCeleb-layout corpus of short files: speaker s is a tone of its own pitch in noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * seconds)) / RATE
    for n in range(utterances):
        speaker = n % speakers
        folder = root / f"id{speaker:05d}" / f"video{n % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        wave = 0.2 * np.sin(2 * np.pi * (120 + 15 * speaker) * t) + 0.02 * rng.standard_normal(len(t))
        soundfile.write(str(folder / f"{n:06d}.wav"), wave.astype(np.float32), RATE, subtype="PCM_16")


PEAK_RSS = (
    "import resource, sys\n"
    "from merlib.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(status)\n"
)


def pretrain_peak_rss_kib(tmp_path: pathlib.Path, corpus: pathlib.Path, name: str) -> int:
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"""base: {REPO / "configs" / "demo.yaml"}
name: {name}
runtime: {{device: cpu, precision: fp32, num_workers: 0}}
speech:
  model: {{m_channels: 4, embed_dim: 16}}
pretrain:
  corpus_root: {corpus}
  augment_copies: 0
  holdout_per_speaker: 1
  stage: {{epochs: 1, chunk_frames: [10], batch_size: 64, warmup_epochs: 0}}
""")
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MERLIB_DATA": str(tmp_path / "data"),
                   "MERLIB_PROGRESS": "off"}  # fmt: skip
    command = [sys.executable, "-c", PEAK_RSS, "pretrain", "--config", str(config), "--runs", str(tmp_path / "runs")]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / name / "pretrain" / "speaker_backbone.pt").is_file()
    return int(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("peak_rss_kib")))


@pytest.mark.slow
def test_pretraining_peak_memory_does_not_grow_with_the_number_of_utterances(tmp_path):
    """2,000 vs 20,000 files of 0.5 s (20 speakers): the second's features alone (~260 MB at 32
    bins) would have doubled the peak of a process that held them; the peaks must stay within 25 %."""
    peaks = {}
    for count in (2_000, 20_000):
        corpus = tmp_path / f"speakers{count}"
        write_speaker_corpus(corpus, count)
        peaks[count] = pretrain_peak_rss_kib(tmp_path, corpus, f"rss{count}")
    assert peaks[20_000] / peaks[2_000] <= 1.25, peaks


def test_stored_features_are_the_computed_ones_read_back_by_offset(tmp_path):
    write_speaker_corpus(tmp_path / "corpus", 6, speakers=2, seconds=0.3)
    wavs = sorted((tmp_path / "corpus").rglob("*.wav"))
    items = [(wav.stem, str(wav.relative_to(tmp_path / "corpus"))) for wav in wavs]
    config = paper_config().features
    cache = FeatureCache(tmp_path / "cache", tmp_path / "corpus", config)
    stored = cache.compute_all(items, progress=False)
    assert isinstance(stored, StoredFeatures) and len(stored) == 6 and stored.lengths == [31] * 6
    from merlib.audio.features import build_front_end, load_audio

    front_end = build_front_end(config)
    for (_, wav), features in zip(items, stored):
        assert torch.equal(features, front_end(load_audio(tmp_path / "corpus" / wav)))  # float32, bit for bit
    # a second cache object reads the shard, computes nothing; a subset is the same rows
    again = FeatureCache(tmp_path / "cache", tmp_path / "corpus", config).compute_all(items, progress=False)
    assert list(again.offset) == list(stored.offset) and len(list(cache.folder.glob("*.ark"))) == 1
    assert torch.equal(stored.subset([4, 1])[0], stored[4])
    # the shard is a Kaldi ark/scp pair: kaldiio reads it by its own index
    import kaldiio

    (scp,) = cache.folder.glob("*.scp")
    assert np.array_equal(kaldiio.load_scp(str(scp))[items[2][0]], stored[2].numpy())


def test_an_extraction_stopped_half_way_keeps_what_it_finished(tmp_path):
    """A corrupt file stops the extraction with its error; the entries before it are kept and not
    computed again; a torn last index line (a killed process) is skipped."""
    from merlib.audio.features import AudioError

    write_speaker_corpus(tmp_path / "corpus", 4, speakers=2, seconds=0.3)
    wavs = sorted((tmp_path / "corpus").rglob("*.wav"))
    wavs[2].write_bytes(b"RIFF not a wav")
    items = [(wav.stem, str(wav.relative_to(tmp_path / "corpus"))) for wav in wavs]
    cache = FeatureCache(tmp_path / "cache", tmp_path / "corpus", paper_config().features)
    with pytest.raises(AudioError, match=wavs[2].name):
        cache.compute_all(items, progress=False)
    (index,) = cache.folder.glob("*.jsonl")
    assert len(index.read_text().splitlines()) == 2
    with open(index, "a") as lines:
        lines.write('{"id": "torn", "off')
    kept = FeatureCache(tmp_path / "cache", tmp_path / "corpus", paper_config().features)
    assert kept.compute_all(items[:2], progress=False).shards == (str(index.with_suffix(".ark")),)
