"""EmoBox partitions read into manifests: folds and splits reproduced exactly, every user error named."""

import json
import re

import pytest
from emobox_fixture import MULTI, MULTI_LABEL_MAP, SINGLE, SINGLE_LABEL_MAP, make_emobox_tree, record, write_jsonl

from merlib.cli import main
from merlib.data import emobox
from merlib.data.manifest import read_manifest
from merlib.errors import DataNotFoundError


@pytest.fixture
def tree(tmp_path):
    return make_emobox_tree(tmp_path)


def _keys(path):
    return {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()}


def _rewrite(path, change):
    """Apply `change` to the records of a JSON-lines file."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    write_jsonl(path, change(records))


def test_folds_reproduce_the_test_files(tree):
    report = emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)
    assert report.protocol == "folds" and report.folds == [1, 2, 3]
    for fold in report.folds:
        listed = _keys(tree.test_file(fold)) - {tree.missing_key}
        assert {u.id for u in report.utterances if u.fold == fold} == listed
        train = {u.id for u in report.utterances if u.fold != fold}
        assert train == _keys(tree.train_file(fold)) - {tree.missing_key}
    assert all(u.split == "" and u.speaker == "" and u.transcript == "" for u in report.utterances)


def test_records_are_mapped_as_emobox_writes_them(tree):
    report = emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)
    by_id = {u.id: u for u in report.utterances}
    assert {i: u.raw_label for i, u in by_id.items()} == {k: tree.raw_labels[k] for k in by_id}
    assert {i: u.label for i, u in by_id.items()} == {k: MULTI_LABEL_MAP[tree.raw_labels[k]] for k in by_id}
    assert {u.raw_label for u in report.utterances if u.label == "Happy"} == {"hap", "exc"}
    first = by_id[f"{MULTI}-Ses01_neu000"]
    assert first.corpus == f"emobox:{MULTI}" and first.duration == pytest.approx(0.1)
    assert first.wav == f"downloads/{MULTI}/Session1/wav/Ses01_neu000.wav"
    assert report.labels == ["Neutral", "Happy", "Angry", "Sad"]  # label_map.json's order
    assert report.unlisted_records == 1 and tree.unlisted_key not in by_id
    assert any(name.endswith(f"{MULTI}_test_fold1.jsonl") for name in report.ignored_files)


def test_missing_wav_is_skipped_and_reported(tree):
    report = emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)
    assert report.missing_wavs == [tree.missing_wav]
    assert tree.missing_key not in {u.id for u in report.utterances}
    assert len(report.utterances) == len(tree.fold_of) - 1
    assert report.counts()["total"]["Happy"] == 3 * 3 - 1


def test_single_fold_corpus_gets_split_names(tree):
    report = emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)
    assert report.protocol == "released" and report.splits == ["train", "valid", "test"] and report.folds == []
    assert {u.id: u.split for u in report.utterances} == tree.split_of
    assert all(u.fold is None for u in report.utterances)
    assert {u.id: u.label for u in report.utterances} == {k: SINGLE_LABEL_MAP[e] for k, e in tree.raw_labels.items()
                                                          if k in tree.split_of}  # fmt: skip
    assert "data.splits: {train: [train], holdout: [valid], test: [test]}" in report.config_lines()


def test_single_fold_without_valid(tree):
    tree.split_file("valid").unlink()
    report = emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)
    assert report.splits == ["train", "test"]
    assert {u.split for u in report.utterances} == {"train", "test"}
    assert "data.splits: {train: [train], holdout: [], test: [test]}" in report.config_lines()


def test_cli_writes_a_manifest_that_reads_back(tree, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["prepare", "emobox", str(tree.data_dir), "--corpus", MULTI, "--root", str(tree.audio_root)]
    assert main([*argv, "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "skipped, missing wav" in shown and tree.missing_wav in shown
    assert "data.labels: [Neutral, Happy, Angry, Sad]" in shown
    assert "data.protocol: folds" in shown and "data.folds: [1, 2, 3]" in shown
    records = read_manifest(out / "utterances.jsonl")
    assert {r.id: r.fold for r in records} == {k: f for k, f in tree.fold_of.items() if k != tree.missing_key}
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert summary["kept"] == len(records) and summary["missing_wavs"] == [tree.missing_wav]
    assert summary["counts"]["2"]["Happy"] == 2 and summary["labels"] == ["Neutral", "Happy", "Angry", "Sad"]
    assert summary["audio_root"] == str(tree.audio_root.resolve())

    assert main(["prepare", "emobox", str(tree.data_dir), "--corpus", SINGLE, "--root", str(tree.audio_root),
                 "--out", str(tmp_path / "single")]) == 0  # fmt: skip
    assert "data.protocol: released" in capsys.readouterr().out
    assert {r.split for r in read_manifest(tmp_path / "single" / "utterances.jsonl")} == {"train", "valid", "test"}


def test_cli_prints_a_user_error_as_one_line(tree, tmp_path, capsys):
    argv = ["prepare", "emobox", str(tree.data_dir), "--corpus", "nosuch", "--root", str(tree.audio_root)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "nosuch: no such corpus folder" in error and MULTI in error and SINGLE in error


def test_unknown_corpus_lists_the_corpora_there(tree):
    with pytest.raises(DataNotFoundError, match=rf"nosuch: no such corpus folder; .* holds: {MULTI}, {SINGLE}"):
        emobox.prepare_emobox(tree.data_dir, "nosuch", tree.audio_root)


def test_no_fold_folders(tree):
    (tree.data_dir / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"empty: no fold_<K> folders"):
        emobox.prepare_emobox(tree.data_dir, "empty", tree.audio_root)


def test_bad_json_line_names_file_and_line(tree):
    path = tree.test_file(2)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:40] + "\n"  # truncated record
    path.write_text("".join(lines))
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(path))}:3: not valid JSON"):
        emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)


def test_missing_keys_name_file_and_line(tree):
    path = tree.split_file("valid")
    _rewrite(path, lambda records: [records[0], {k: v for k, v in records[1].items() if k != "emo"}, *records[2:]])
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(path))}:2: missing key\(s\) emo"):
        emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)


def test_emo_not_in_label_map(tree):
    label_map = tree.data_dir / SINGLE / "label_map.json"
    label_map.write_text(json.dumps({k: v for k, v in SINGLE_LABEL_MAP.items() if k != "anger"}))
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"emo 'anger' is not in {re.escape(str(label_map))}"):
        emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)


def test_label_differing_in_case_gets_its_fix_named(tree):
    label_map = tree.data_dir / SINGLE / "label_map.json"
    label_map.write_text(json.dumps({("Neutral" if k == "neutral" else k): v for k, v in SINGLE_LABEL_MAP.items()}))
    with pytest.raises(emobox.EmoBoxFormatError, match=r"it has 'Neutral': add \"neutral\": \"Neutral\""):
        emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)


def test_missing_label_map_lists_the_raw_labels(tree):
    (tree.data_dir / SINGLE / "label_map.json").unlink()
    with pytest.raises(DataNotFoundError, match=r"label_map.json: missing; .*anger, joy, neutral, sadness"):
        emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)


def test_same_key_with_different_content(tree):
    path = tree.train_file(3)
    _rewrite(path, lambda records: [{**records[0], "length": 2.5}, *records[1:]])
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(path))}:1: key '{MULTI}-Ses01_neu000' was "
                       rf"listed differently at {re.escape(str(tree.test_file(1)))}:1"):  # fmt: skip
        emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)


def test_valid_file_in_a_multi_fold_corpus(tree):
    valid = tree.data_dir / MULTI / "fold_2" / f"{MULTI}_valid_fold_2.jsonl"
    write_jsonl(valid, [])
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(valid))}: a valid file .* folds protocol"):
        emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)


def test_overlapping_test_sets_name_both_files(tree):
    moved = json.loads(tree.test_file(1).read_text().splitlines()[0])
    _rewrite(tree.test_file(2), lambda records: [*records, moved])
    _rewrite(tree.train_file(2), lambda records: [r for r in records if r["key"] != moved["key"]])
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(tree.test_file(2)))}: key .* is also in "
                       rf"{re.escape(str(tree.test_file(1)))}"):  # fmt: skip
        emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)


def test_train_that_is_not_the_rest_names_the_train_file(tree):
    _rewrite(tree.train_file(3), lambda records: records[1:])
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(tree.train_file(3)))}: train is not all "
                       rf"records minus {MULTI}_test_fold_3.jsonl \(1 missing"):  # fmt: skip
        emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)


def test_record_in_no_test_file(tree):
    extra = record(MULTI, "Ses08_sad000", f"downloads/{MULTI}/Session8/wav/Ses08_sad000.wav", "sad")
    for fold in (1, 2, 3):
        _rewrite(tree.train_file(fold), lambda records: [*records, extra])  # noqa: B023
    with pytest.raises(emobox.EmoBoxFormatError, match=r"1 record\(s\) in no test file .*Ses08_sad000"):
        emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)


def test_record_in_two_splits(tree):
    moved = json.loads(tree.split_file("train").read_text().splitlines()[0])
    _rewrite(tree.split_file("test"), lambda records: [*records, moved])
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(tree.split_file('test')))}: key .* is also "
                       rf"in {re.escape(str(tree.split_file('train')))}"):  # fmt: skip
        emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)


def test_segment_records_are_refused(tree):
    path = tree.split_file("test")
    _rewrite(path, lambda records: [{**records[0], "start_time": 0.0, "end_time": 0.1}, *records[1:]])
    with pytest.raises(emobox.EmoBoxFormatError, match=rf"{re.escape(str(path))}:1: the record is a segment"):
        emobox.prepare_emobox(tree.data_dir, SINGLE, tree.audio_root)


def test_missing_test_file(tree):
    tree.test_file(2).unlink()
    with pytest.raises(DataNotFoundError, match=rf"{re.escape(str(tree.test_file(2)))}: missing"):
        emobox.prepare_emobox(tree.data_dir, MULTI, tree.audio_root)


@pytest.mark.filterwarnings("ignore:hold-out. too few utterances")
@pytest.mark.parametrize("corpus", [MULTI, SINGLE])
def test_the_printed_config_lines_make_merlibs_folds_emoboxs_partitions(tree, tmp_path, corpus):
    """configs/emobox.yaml with the lines `prepare` prints: merlib's test sets are EmoBox's test
    files, and train + hold-out its train files (the hold-out: its valid file where there is one)."""
    import pathlib

    from merlib.config import config_overrides, load_config
    from merlib.corpus import fold_of, load_utterances

    report = emobox.prepare_emobox(tree.data_dir, corpus, tree.audio_root)
    manifest = emobox.write_prepared(report, tmp_path / "manifest")
    assignments = [line.split("  #")[0].replace(": ", "=", 1) for line in report.config_lines()]
    assignments += [f"data.root={tree.audio_root}", f"data.manifest={manifest}"]
    config = load_config(pathlib.Path("configs/emobox.yaml").resolve(), config_overrides(assignments))
    utterances, _ = load_utterances(config)
    kept = {u.id for u in utterances}
    for fold in config.data.folds:
        split = fold_of(config, utterances, fold)
        train = {u.id for u in split.train + split.holdout}
        if corpus == MULTI:
            assert {u.id for u in split.test} == _keys(tree.test_file(fold)) & kept
            assert train == _keys(tree.train_file(fold)) & kept
        else:
            assert {u.id for u in split.test} == _keys(tree.split_file("test")) & kept
            assert {u.id for u in split.holdout} == _keys(tree.split_file("valid")) & kept
            assert {u.id for u in split.train} == _keys(tree.split_file("train")) & kept
