"""The manifest contract: typed records, JSONL round trip, errors naming file, line and field."""

import dataclasses
import json

import pytest

from merlib.data.manifest import FIELDS, ManifestError, Utterance, read_manifest, write_manifest

RECORD = Utterance(
    id="Ses01F_impro01_M001",
    corpus="iemocap",
    session=1,
    fold=1,
    speaker="Ses01M",
    gender="M",
    label="hap",
    raw_label="exc",
    transcript="Yeah, I'm so happy.",
    wav="Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav",
    start=2.75,
    end=4.25,
    duration=1.5,
    kind="impro",
    dialog="Ses01F_impro01",
)


def test_round_trip(tmp_path):
    path = write_manifest([RECORD], tmp_path / "utterances.jsonl")
    assert read_manifest(path) == [RECORD]
    written = list(json.loads(path.read_text()))
    assert written == [name for name in FIELDS if name not in ("split", "attributes")]  # unset extras left out


OTHER_CORPUS = Utterance(
    id="MSP-PODCAST_0001_0008",
    corpus="msp_podcast",
    speaker="",
    label="C",
    raw_label="C",
    transcript="",
    wav="Audios/MSP-PODCAST_0001_0008.wav",
    duration=3.2,
    split="Test1",
    gender="F",
    attributes={"arousal": 4.2, "valence": 3.0, "dominance": 4.0},
)


def test_a_record_of_another_corpus_needs_only_the_core_fields(tmp_path):
    path = write_manifest([OTHER_CORPUS], tmp_path / "utterances.jsonl")
    assert read_manifest(path) == [OTHER_CORPUS]
    minimal = {"id": "a", "corpus": "mine", "label": "joy", "wav": "a.wav", "duration": 1.0}
    path.write_text(json.dumps(minimal) + "\n")
    (record,) = read_manifest(path)
    assert (record.raw_label, record.speaker, record.transcript, record.fold, record.split) == ("joy", "", "", None, "")


def test_an_iemocap_manifest_without_folds_gets_its_sessions(tmp_path):
    row = dataclasses.asdict(RECORD)
    del row["fold"], row["split"], row["attributes"]  # the manifest as written before folds were a field
    path = tmp_path / "utterances.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert read_manifest(path) == [RECORD]
    path.write_text(json.dumps(row | {"fold": 2}) + "\n")
    with pytest.raises(ManifestError, match="fold: 2 is not the session 1"):
        read_manifest(path)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"label": "fru"}, "label"),
        ({"session": 7}, "session"),
        ({"gender": "X"}, "gender"),
        ({"wav": "/data/IEMOCAP/x.wav"}, "wav"),
        ({"speaker": "Ses01F"}, "speaker"),
        ({"duration": 0}, "duration"),
        ({"session": "one"}, "session"),
        ({"transcript": None}, "transcript"),
        ({"fold": 1.5}, "fold"),
        ({"attributes": [1]}, "attributes"),
        ({"corpus": "mine", "label": ""}, "label"),
    ],
)
def test_bad_field_is_named_with_file_and_line(tmp_path, change, field):
    good = dataclasses.asdict(RECORD)
    bad = good | change | {"id": "other"}
    path = tmp_path / "utterances.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ManifestError, match=rf"utterances\.jsonl:2: field.*{field}"):
        read_manifest(path)


def test_truncated_jsonl_says_so(tmp_path):
    path = tmp_path / "utterances.jsonl"
    text = json.dumps(dataclasses.asdict(RECORD))
    path.write_text(text + "\n" + text[:40])
    with pytest.raises(ManifestError, match=r":2: not valid JSON.*truncated"):
        read_manifest(path)


def test_missing_field_and_duplicate_id(tmp_path):
    path = tmp_path / "utterances.jsonl"
    row = dataclasses.asdict(RECORD)
    del row["wav"]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ManifestError, match=r":1: missing field\(s\) wav"):
        read_manifest(path)
    path.write_text((json.dumps(dataclasses.asdict(RECORD)) + "\n") * 2)
    with pytest.raises(ManifestError, match="appears twice"):
        read_manifest(path)


def test_missing_manifest_says_how_to_make_it(tmp_path):
    with pytest.raises(ManifestError, match="merlib prepare iemocap"):
        read_manifest(tmp_path / "nope.jsonl")


def test_write_refuses_invalid_records(tmp_path):
    with pytest.raises(ManifestError, match="label"):
        write_manifest([dataclasses.replace(RECORD, label="exc")], tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()
