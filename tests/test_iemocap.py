"""IEMOCAP parsing on fixtures in the real format, quirks included."""

import json
import pathlib

import pytest
from iemocap_fixture import LATIN1_TEXT, PAPER_COUNTS, make_iemocap_tree

from merlib.cli import main
from merlib.data import iemocap
from merlib.data.manifest import read_manifest


def test_kept_utterances_labels_and_transcripts(iemocap_tree):
    report = iemocap.prepare_iemocap(iemocap_tree.root)
    by_id = {u.id: u for u in report.utterances}
    assert sorted(by_id) == sorted(iemocap_tree.kept_ids)
    assert {i: u.label for i, u in by_id.items()} == iemocap_tree.labels
    assert {i: u.transcript for i, u in by_id.items()} == iemocap_tree.transcripts
    assert by_id[iemocap_tree.latin1_id].transcript == LATIN1_TEXT
    assert by_id[iemocap_tree.no_transcript_id].transcript == ""
    assert report.missing_transcripts == [iemocap_tree.no_transcript_id]
    # exc is merged into hap, and the raw label is kept
    assert {u.raw_label for u in report.utterances if u.label == "hap"} == {"hap", "exc"}


def test_quirks_are_skipped_and_counted(iemocap_tree):
    report = iemocap.prepare_iemocap(iemocap_tree.root)
    assert report.missing_wavs == iemocap_tree.missing_wavs
    assert dict(report.labelled_other_classes) == iemocap_tree.other_classes
    assert report.ignored_transcription_lines == iemocap_tree.stray_lines
    assert any("Categorical" in f for f in report.ignored_files)
    assert any(pathlib.Path(f).name.startswith("._") for f in report.ignored_files)
    assert len(report.cp1252_lines) == 1 and report.cp1252_lines[0].endswith(":1")
    assert not any("XX0" in u.id for u in report.utterances)


def test_speaker_is_the_gender_of_the_last_id_field(iemocap_tree):
    report = iemocap.prepare_iemocap(iemocap_tree.root)
    record = next(u for u in report.utterances if u.id == "Ses01F_impro01_M001")
    assert (record.speaker, record.gender, record.session) == ("Ses01M", "M", 1)
    assert record.dialog == "Ses01F_impro01" and record.kind == "impro"
    assert record.wav == "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav"
    scripted = next(u for u in report.utterances if u.dialog == "Ses01F_script01_1")
    assert scripted.kind == "script"
    assert iemocap.speaker_of("Ses05M_script02_2_F017") == (5, "F")
    assert record.duration == pytest.approx(0.05)
    assert (record.start, record.end) == (pytest.approx(2.75), pytest.approx(4.25))


def test_corrupt_label_line_names_file_and_line(tmp_path):
    info = make_iemocap_tree(tmp_path, counts={1: {"ang": 1, "hap": 1, "neu": 1, "sad": 1}})
    label_file = info.root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    lines = label_file.read_text().splitlines(keepends=True)
    lines[2] = "[6.2901 - 8.23\tSes01F_impro01_F000\tneu\n"  # truncated label line
    label_file.write_text("".join(lines))
    with pytest.raises(iemocap.IemocapFormatError, match=r"Ses01F_impro01\.txt:3: not an IEMOCAP label line"):
        iemocap.prepare_iemocap(info.root)


def test_not_an_iemocap_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Session1..Session5"):
        iemocap.prepare_iemocap(tmp_path)


def test_cli_writes_manifest_and_warns_on_partial_copy(iemocap_tree, tmp_path, capsys):
    with pytest.warns(UserWarning, match="counts differ"):
        assert main(["prepare", "iemocap", str(iemocap_tree.root), "--out", str(tmp_path / "m")]) == 0
    shown = capsys.readouterr().out
    assert "(exp 229)" in shown and "skipped, missing wav: 1" in shown
    records = read_manifest(tmp_path / "m" / "utterances.jsonl")
    assert len(records) == len(iemocap_tree.kept_ids)
    summary = json.loads((tmp_path / "m" / "prepare_summary.json").read_text())
    assert summary["missing_wavs"] == iemocap_tree.missing_wavs
    assert main(["prepare", "iemocap", str(iemocap_tree.root), "--out", str(tmp_path / "m"), "--strict"]) == 2
    assert "counts differ" in capsys.readouterr().err


# The paper's own statements (section 4.1 and its LOSO test sizes), typed here from the text, so the
# expected-counts file that `prepare --strict` compares with is checked against the paper, not itself.
PAPER_CLASS_TOTALS = {"ang": 1103, "hap": 1636, "neu": 1708, "sad": 1084}
PAPER_SESSION_SIZES = {"1": 1085, "2": 1023, "3": 1151, "4": 1031, "5": 1241}


def test_expected_counts_agree_with_the_papers_totals():
    expected = iemocap.load_expected_counts()
    assert expected["total"] == PAPER_CLASS_TOTALS and sum(PAPER_CLASS_TOTALS.values()) == 5531
    assert {s: sum(expected[s].values()) for s in PAPER_SESSION_SIZES} == PAPER_SESSION_SIZES
    for label in PAPER_CLASS_TOTALS:
        assert sum(expected[s][label] for s in PAPER_SESSION_SIZES) == expected["total"][label]


@pytest.mark.slow
def test_full_size_tree_gives_the_paper_counts(tmp_path, capsys):
    info = make_iemocap_tree(tmp_path, counts=PAPER_COUNTS, wav_seconds=0.02)
    assert main(["prepare", "iemocap", str(info.root), "--out", str(tmp_path / "m"), "--strict"]) == 0
    records = read_manifest(tmp_path / "m" / "utterances.jsonl")
    assert len(records) == 5531
    expected = iemocap.load_expected_counts()
    report_counts = json.loads((tmp_path / "m" / "prepare_summary.json").read_text())["counts"]
    assert report_counts == expected
    speakers = json.loads((tmp_path / "m" / "prepare_summary.json").read_text())["speakers"]
    assert len(speakers) == 10 and sum(speakers.values()) == 5531
    for session in range(1, 6):
        assert speakers[f"Ses0{session}F"] + speakers[f"Ses0{session}M"] == PAPER_SESSION_SIZES[str(session)]
    assert {label: sum(r.label == label for r in records) for label in PAPER_CLASS_TOTALS} == PAPER_CLASS_TOTALS
    assert "(exp" not in capsys.readouterr().out
