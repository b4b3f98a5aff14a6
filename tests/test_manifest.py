"""The manifest contract: typed records, JSONL round trip, errors naming file, line and field."""

import dataclasses
import json

import pytest

from merlib.data.manifest import FIELDS, ManifestError, Utterance, read_manifest, write_manifest

RECORD = Utterance(
    id="Ses01F_impro01_M001",
    corpus="iemocap",
    session=1,
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
    assert list(json.loads(path.read_text())) == list(FIELDS)


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
    del row["kind"]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ManifestError, match=r":1: missing field\(s\) kind"):
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
