"""MSP-Podcast parsing on fixtures in the release layout, quirks included."""

import json
import shutil

import pytest
from msp_podcast_fixture import CLASSES, make_msp_podcast_tree

from merlib.cli import main
from merlib.data import msp_podcast
from merlib.data.manifest import read_manifest
from merlib.errors import DataNotFoundError, MerlibError

SMALL = {"Train": 5, "Development": 1, "Test1": 1, "Test2": 1}


@pytest.fixture(scope="module")
def msp_tree(tmp_path_factory):
    """A small release tree with every quirk (0.1 s wavs: parsing needs no more)."""
    return make_msp_podcast_tree(tmp_path_factory.mktemp("msp") / "MSP-Podcast", SMALL, seconds=0.1)


@pytest.fixture(scope="module")
def report(msp_tree):
    return msp_podcast.prepare_msp_podcast(msp_tree.root)


def _copy(tree, tmp_path):
    """A private copy of the module's tree, for tests that break a file."""
    return shutil.copytree(tree.root, tmp_path / "copy")


def test_kept_records_match_the_fixture(msp_tree, report):
    by_id = {u.id: u for u in report.utterances}
    assert sorted(by_id) == sorted(msp_tree.kept_ids)
    assert {i: u.label for i, u in by_id.items()} == msp_tree.labels
    assert {i: u.raw_label for i, u in by_id.items()} == msp_tree.labels
    assert {i: u.split for i, u in by_id.items()} == msp_tree.splits
    assert {i: u.speaker for i, u in by_id.items()} == msp_tree.speakers
    assert {i: u.gender for i, u in by_id.items()} == msp_tree.genders
    assert {i: u.transcript for i, u in by_id.items()} == msp_tree.transcripts
    assert {i: u.attributes for i, u in by_id.items()} == msp_tree.attributes
    record = by_id[msp_tree.kept_ids[0]]
    assert record.corpus == "msp_podcast" and record.wav == f"Audios/{record.id}.wav"
    assert record.duration == pytest.approx(0.1)
    assert set(record.attributes) == {"arousal", "valence", "dominance"}


def test_counts_per_split_and_class_and_dropped_o_x(msp_tree, report):
    counts = report.counts()
    assert list(counts) == ["Train", "Development", "Test1", "Test2", "total"]  # splits kept by name, in order
    assert {split: row for split, row in counts.items() if split != "total"} == msp_tree.counts
    assert counts["total"] == {label: 8 for label in CLASSES}
    assert report.dropped_counts() == msp_tree.dropped
    assert report.dropped_counts()["Train"] == {"O": 2, "X": 1}
    assert not report.unknown_classes


def test_quirks_are_reported(msp_tree, report):
    assert report.missing_wavs == msp_tree.missing_wavs and len(report.missing_wavs) == 1
    assert report.missing_transcripts == msp_tree.missing_transcripts and len(report.missing_transcripts) == 1
    assert report.unknown_speakers() == len(msp_tree.unknown_speaker_ids) == 2
    assert report.unknown_genders() == 2
    assert (msp_tree.root / "Labels" / "labels_consensus.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert not report.unreadable_wavs


def test_fixture_speakers_are_disjoint_across_splits(msp_tree):
    by_split = {}
    for utterance_id, split in msp_tree.splits.items():
        by_split.setdefault(split, set()).add(msp_tree.speakers[utterance_id])
    assert "" in by_split["Train"] and all("" not in s for name, s in by_split.items() if name != "Train")
    names = list(by_split)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not (by_split[a] - {""}) & by_split[b]


def test_training_fixture_shape(tmp_path):
    """The default tree is the one a tiny end-to-end run uses: 1.0-1.5 s wavs, a few MB."""
    info = make_msp_podcast_tree(tmp_path)
    report = msp_podcast.prepare_msp_podcast(tmp_path)
    counts = report.counts()
    assert all(counts["Train"][c] == 6 for c in CLASSES)
    assert all(counts[s][c] == 2 for s in ("Development", "Test1", "Test2") for c in CLASSES)
    assert all(1.0 <= u.duration <= 1.5 for u in report.utterances)
    assert sum(p.stat().st_size for p in (tmp_path / "Audios").iterdir()) < 6e6
    assert len(info.kept_ids) == 96
    # deterministic from the seed
    again = make_msp_podcast_tree(tmp_path / "again")
    first = sorted((tmp_path / "Audios").iterdir())[0]
    assert (tmp_path / "again" / "Audios" / first.name).read_bytes() == first.read_bytes()
    assert again.transcripts == info.transcripts


def test_without_quirks_everything_is_kept(tmp_path):
    info = make_msp_podcast_tree(tmp_path, 1, seconds=0.05, quirks=False)
    report = msp_podcast.prepare_msp_podcast(tmp_path)
    assert len(report.utterances) == len(info.kept_ids) == 32
    assert not (report.missing_wavs or report.missing_transcripts or report.unknown_speakers())
    assert all(sum(row.values()) == 0 for row in report.dropped_counts().values())


def test_unknown_class_and_unreadable_wav_are_reported_not_fatal(msp_tree, tmp_path):
    root = _copy(msp_tree, tmp_path)
    labels = root / "Labels" / "labels_consensus.csv"
    lines = labels.read_text(encoding="utf-8-sig").splitlines()
    lines[1] = lines[1].replace(f",{lines[1].split(',')[1]},", ",Z,", 1)
    labels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    broken = msp_tree.kept_ids[-1]
    (root / "Audios" / f"{broken}.wav").write_bytes(b"not a wav")
    report = msp_podcast.prepare_msp_podcast(root)
    assert dict(report.unknown_classes) == {"Z": 1}
    assert report.unreadable_wavs == [f"{broken}.wav"]
    assert len(report.utterances) == len(msp_tree.kept_ids) - 2


def test_root_without_labels_names_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"labels_consensus\.csv: not found.*Audios/.*Transcripts/"):
        msp_podcast.prepare_msp_podcast(tmp_path)


def test_missing_columns_are_named(msp_tree, tmp_path):
    root = _copy(msp_tree, tmp_path)
    labels = root / "Labels" / "labels_consensus.csv"
    text = labels.read_text(encoding="utf-8-sig").replace("EmoDom", "Dominance", 1).replace("SpkrID", "Speaker", 1)
    labels.write_text(text, encoding="utf-8")
    with pytest.raises(
        msp_podcast.MspPodcastFormatError, match=r"labels_consensus\.csv: missing column\(s\) EmoDom, SpkrID"
    ):
        msp_podcast.prepare_msp_podcast(root)


def test_non_numeric_attribute_names_file_and_line(msp_tree, tmp_path):
    root = _copy(msp_tree, tmp_path)
    labels = root / "Labels" / "labels_consensus.csv"
    lines = labels.read_text(encoding="utf-8-sig").splitlines()
    fields = lines[3].split(",")
    fields[3] = "n/a"  # EmoVal
    lines[3] = ",".join(fields)
    labels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(
        msp_podcast.MspPodcastFormatError, match=r"labels_consensus\.csv:4: EmoVal 'n/a' is not a number"
    ):
        msp_podcast.prepare_msp_podcast(root)


def test_duplicate_file_name_names_both_lines(msp_tree, tmp_path):
    root = _copy(msp_tree, tmp_path)
    labels = root / "Labels" / "labels_consensus.csv"
    lines = labels.read_text(encoding="utf-8-sig").splitlines()
    lines.append(lines[2])
    labels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    name = lines[2].split(",")[0]
    expected = rf"labels_consensus\.csv:{len(lines)}: FileName '{name}' already appears on line 3"
    with pytest.raises(msp_podcast.MspPodcastFormatError, match=expected):
        msp_podcast.prepare_msp_podcast(root)


def test_cli_writes_a_manifest_that_reads_back(msp_tree, tmp_path, capsys):
    out = tmp_path / "manifest"
    assert main(["prepare", "msp-podcast", str(msp_tree.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "8-class utterances (O and X dropped): 64" in printed
    assert "Development" in printed and "Test2" in printed
    assert "skipped, missing wav: 1: " + msp_tree.missing_wavs[0] in printed
    assert "kept with empty transcript" in printed and msp_tree.missing_transcripts[0] in printed
    records = read_manifest(out / "utterances.jsonl")
    assert sorted(r.id for r in records) == sorted(msp_tree.kept_ids)
    assert {r.id: r.attributes for r in records} == msp_tree.attributes
    assert {r.id: r.split for r in records} == msp_tree.splits
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert summary["counts"]["Test1"] == {label: 1 for label in CLASSES}
    assert summary["dropped"] == msp_tree.dropped
    assert summary["unknown_speakers"] == 2
    assert summary["missing_wavs"] == msp_tree.missing_wavs
    assert summary["missing_transcripts"] == msp_tree.missing_transcripts
    assert summary["corpus_root"] == str(msp_tree.root.resolve())


def test_cli_user_error_is_one_line_naming_the_file(tmp_path, capsys):
    assert main(["prepare", "msp-podcast", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("merlib prepare: error: ") and "labels_consensus.csv" in error
    assert error.count("\n") == 1
    assert issubclass(msp_podcast.MspPodcastFormatError, MerlibError)
