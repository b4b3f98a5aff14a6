"""Configs are data: YAML → dataclasses, the paper's values in one place, the plan declared,
and every mistake refused at load with the file, the key and the allowed values."""

import dataclasses
import json
import pathlib
import re
import typing

import pytest

from merlib.config import (
    BackboneName,
    Config,
    ConfigError,
    FrontEndName,
    PretrainedSource,
    config_overrides,
    load_config,
    paper_config,
)

SHIPPED = sorted(pathlib.Path("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.systems and config.outputs()


def test_paper_config_holds_the_paper_values():
    config = load_config("configs/paper.yaml")
    assert config.features.n_mels == 128 and config.features.win_ms == 25 and config.features.hop_ms == 10
    assert config.features.normalization == "per_bin" and config.speech.model.m_channels == 32
    assert (config.speech.linear_probe.lr, config.speech.fine_tune.backbone_lr, config.speech.fine_tune.lr) == (
        0.1,
        1e-3,
        0.1,
    )
    assert config.speech.fine_tune.chunk_frames == [150, 200, 250, 300] and config.augment.copies == 2
    assert (config.text.lr, config.text.batch_size) == (2e-5, 32) and config.data.folds == [1, 2, 3, 4, 5]
    assert config.outputs() == ["speech_lp", "speech_ft", "text", "fusion_weighted", "fusion_znorm"]


def _recipe_sections(cls=Config):
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            yield hint
            yield from _recipe_sections(hint)


def test_defaults_live_in_paper_yaml_only():
    """No recipe section of the dataclasses carries a default value: paper.yaml sets them all."""
    for section in {Config, *_recipe_sections()}:
        with_default = [
            f.name
            for f in dataclasses.fields(section)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        ]
        allowed = {"path"} if section.__name__ == "PretrainedConfig" else set()
        assert set(with_default) <= allowed, (section.__name__, with_default)


def test_a_config_without_the_paper_base_names_the_missing_keys(tmp_path):
    (tmp_path / "alone.yaml").write_text("name: alone\nseed: 0\n")
    with pytest.raises(ConfigError, match=r"alone.yaml: missing key\(s\) data, features, augment.*base: paper.yaml"):
        load_config(tmp_path / "alone.yaml")


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: " + str((tmp_path / "..").resolve()) + "/x.yaml\n")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(path)
    path.write_text("base: paper.yaml\nfeatures:\n  n_mel: 64\n")  # the shipped paper.yaml, found by name
    with pytest.raises(ConfigError, match=r"bad.yaml.features: unknown key\(s\) n_mel"):
        load_config(path)
    path.write_text("base: paper.yaml\nfeatures:\n  n_mels: lots\n")
    with pytest.raises(ConfigError, match=r"features.n_mels: expected int"):
        load_config(path)


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("features.normalization", "perbin", "per_bin, global, mean, none"),
        ("features.kind", "mfcc", "logmel, kaldi_fbank, ge2e_mel"),
        ("speech.model.backbone", "resnet43", "resnet34, ge2e"),
        ("speech.model.activation", "gelu", "prelu, relu"),
        ("speech.pretrained.source", "wespeaker-typo", "none, pretrain, resemblyzer, wespeaker, checkpoint"),
        ("speech.fine_tune.optimizer", "adamw", "sgd, adam"),
        ("data.holdout", "random", "stratified, session"),
        ("runtime.precision", "fp8", "auto, fp32, bf16, fp16"),
    ],
)
def test_a_misspelt_choice_is_refused_at_load_with_the_allowed_values(key, value, allowed):
    with pytest.raises(ConfigError, match=rf"{key}: '{value}' is not allowed; choose one of: {allowed}"):
        paper_config(config_overrides([f"{key}={value}"]))


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("speech.fine_tune.epochs=-1", "speech.fine_tune.epochs: -1 must be ≥ 1"),
        ("speech.fine_tune.chunk_frames=[]", "speech.fine_tune.chunk_frames: must not be empty"),
        ("data.holdout_fraction=1.5", "data.holdout_fraction: 1.5 must be < 1"),
        ("data.holdout_fraction=0", "data.holdout_fraction: 0.0 must be > 0"),
        ("text.lr=0", "text.lr: 0.0 must be > 0"),
        ("runtime.device=gpu", "runtime.device: 'gpu' is not allowed"),
    ],
)
def test_values_out_of_range_are_refused_at_load(assignment, message):
    with pytest.raises(ConfigError, match=message):
        paper_config(config_overrides([assignment]))


def test_the_choices_are_the_plug_in_tables():
    from merlib.audio.features import FRONT_ENDS
    from merlib.models.backbones import BACKBONES
    from merlib.train.pretrained import PRETRAINED_SOURCES

    assert typing.get_args(FrontEndName) == tuple(FRONT_ENDS)
    assert typing.get_args(BackboneName) == tuple(BACKBONES)
    assert typing.get_args(PretrainedSource) == tuple(PRETRAINED_SOURCES)


def test_set_assignments_become_nested_overrides():
    assert config_overrides(["speech.fine_tune.epochs=3", "data.folds=[1, 2]", "text.model=/m/bert"]) == {
        "speech": {"fine_tune": {"epochs": 3}},
        "data": {"folds": [1, 2]},
        "text": {"model": "/m/bert"},
    }
    with pytest.raises(ConfigError, match="key.sub=value"):
        config_overrides(["speech.fine_tune.epochs"])


def test_base_and_overrides(tmp_path):
    (tmp_path / "small.yaml").write_text("base: paper.yaml\nname: small\nfeatures:\n  n_mels: 64\n")
    config = load_config(tmp_path / "small.yaml", overrides={"data": {"folds": [3]}})
    assert (config.name, config.features.n_mels, config.features.hop_ms, config.data.folds) == ("small", 64, 10.0, [3])


def test_a_system_resolves_its_overrides_over_the_run():
    config = load_config("configs/demo.yaml")
    ge2e = config.system_config("speech_ge2e")
    assert (ge2e.features.kind, ge2e.speech.model.backbone, ge2e.speech.fine_tune.optimizer) == (
        "ge2e_mel",
        "ge2e",
        "adam",
    )
    assert ge2e.speech.fine_tune.max_grad_norm == config.speech.fine_tune.max_grad_norm  # the rest is the run's
    assert config.system_config("speech") is config
    assert [s.name for s in config.systems_of("speech")] == ["speech", "speech_random", "speech_ge2e"]  # networks
    assert [s.name for s in config.systems if s.baseline] == ["baseline_speech_stats", "baseline_text_tfidf"]
    assert config.system("baseline_speech_stats").outputs() == ["baseline_speech_stats"]  # no stages


def test_a_baseline_is_a_system_of_its_own_modality_without_overrides():
    base = {"fusions": [], "claims": []}
    with pytest.raises(ConfigError, match="baseline tfidf is a text system without overrides"):
        load_config("configs/demo.yaml", base | {"systems": [{"name": "b", "modality": "speech", "baseline": "tfidf"}]})
    with pytest.raises(ConfigError, match="baseline log_mel_statistics is a speech system without overrides"):
        system = {"name": "b", "modality": "speech", "baseline": "log_mel_statistics",
                  "overrides": {"speech": {"probe_chunks": 1}}}  # fmt: skip
        load_config("configs/demo.yaml", base | {"systems": [system]})
    with pytest.raises(ConfigError, match=r"classes must be two of data.labels \(ang, hap, neu, sad\)"):
        claim = {"name": "c", "kind": "less_confused", "system": "text", "than": ["text"], "classes": ["hap", "exc"]}
        load_config("configs/demo.yaml", {"claims": [claim]})


@pytest.mark.parametrize(
    "plan, message",
    [
        (
            {"fusions": [{"name": "f", "method": "weighted", "inputs": ["speech_ft", "txt"]}]},
            "fusion f fuses txt, which no system writes",
        ),
        (
            {"fusions": [{"name": "f", "method": "average", "inputs": ["speech_ft", "text"]}]},
            r"fusions\[0\].method: 'average' is not allowed; choose one of: weighted, znorm",
        ),
        (
            {"fusions": [{"name": "text", "method": "weighted", "inputs": ["speech_ft", "text"]}]},
            "text stands more than once",
        ),
        (
            {"systems": [{"name": "b", "modality": "speech", "baseline": "svm"}], "fusions": []},
            r"systems\[0\].baseline: 'svm' is not allowed; choose one of: log_mel_statistics, tfidf",
        ),
        (
            {"systems": [{"name": "b", "modality": "speech", "baseline": "tfidf"}], "fusions": []},
            "baseline tfidf is a text system",
        ),
        (
            {"systems": [{"name": "speech", "modality": "speech"}, {"name": "speech", "modality": "text"}]},
            "system names must differ",
        ),
        (
            {"systems": [{"name": "t", "modality": "text", "overrides": {"features": {"n_mels": 40}}}], "fusions": []},
            "system t \\(text\\) overrides features; a text system may override: text",
        ),
        (
            {
                "systems": [{"name": "s", "modality": "speech", "overrides": {"features": {"n_mels": 40}}}],
                "fusions": [],
            },
            "system s transfers this run's speaker pretraining",
        ),
        ({"systems": [], "fusions": []}, "systems: must not be empty"),
    ],
)
def test_a_bad_plan_is_refused_at_load(plan, message):
    with pytest.raises(ConfigError, match=message):
        paper_config(plan)


def test_cli_set_works_on_every_command_that_takes_a_config(tmp_path, capsys):
    from merlib.cli import build_parser, main

    parser = build_parser()
    for command in ("pretrain", "speech --fold 1", "text --fold 1", "run", "demo", "bench speech"):
        args = parser.parse_args(command.split() + ["--set", "seed=3", "--set", "speech.fine_tune.epochs=2"])
        assert args.set == ["seed=3", "speech.fine_tune.epochs=2"], command
    assert main(["pretrain", "--set", "speech.model.backbone=resnet43", "--runs", str(tmp_path)]) == 2
    assert "speech.model.backbone: 'resnet43' is not allowed; choose one of: resnet34, ge2e" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# -- run safety: a run's name is one folder, and a config cannot blow up the loader ----------------
RUN_NAME_RULE = r"\(\[A-Za-z0-9\]\[A-Za-z0-9._-\]\*\), at most 100 characters, without '\.\.'"


@pytest.mark.parametrize(
    "name",
    ["../escaped", "..", "/elsewhere/x", ".", "", "two\nlines", "a/b", "-dash", "x" * 101, "a..b"],
    ids=["parent", "dotdot", "absolute", "dot", "empty", "newline", "slash", "dash_first", "too_long", "inner_dotdot"],
)
def test_a_run_name_that_is_not_one_safe_folder_is_refused_at_load(tmp_path, name):
    path = tmp_path / "named.yaml"
    path.write_text(f"base: paper.yaml\nname: {json.dumps(name)}\n")  # a JSON string is a YAML one
    with pytest.raises(ConfigError, match=rf"named.yaml: name {re.escape(repr(name))}: .*{RUN_NAME_RULE}"):
        load_config(path)


def test_a_bad_run_name_from_set_is_refused():
    with pytest.raises(ConfigError, match=rf"paper.yaml: name '\.\./x': .*{RUN_NAME_RULE}"):
        paper_config(config_overrides(["name=../x"]))


@pytest.mark.parametrize("name", ["demo", "my-run_2.v1", "0", "x" * 100])
def test_a_good_run_name_passes(tmp_path, name):
    (tmp_path / "named.yaml").write_text(f"base: paper.yaml\nname: '{name}'\n")
    assert load_config(tmp_path / "named.yaml").name == name


def test_open_run_keeps_the_run_folder_under_the_runs_folder(tmp_path, monkeypatch):
    """Defensive second check in the notebooks' entry point, for a config that got past check_config."""
    from merlib import workbook

    good = paper_config({"name": "fine"})
    config, run_dir = workbook.open_run("configs/paper.yaml", runs=str(tmp_path / "runs"))
    assert run_dir == tmp_path / "runs" / "paper" and (run_dir / "config.yaml").is_file()
    for name in ("../escaped", "..", "/elsewhere/x", ".", "a/b"):
        monkeypatch.setattr(
            workbook, "load_config", lambda *args, name=name, **kwargs: dataclasses.replace(good, name=name)
        )
        with pytest.raises(ConfigError, match=rf"name {re.escape(repr(name))} would put the run folder outside"):
            workbook.open_run("configs/paper.yaml", runs=str(tmp_path / "other"))
    assert not (tmp_path / "other").exists() and not (tmp_path / "escaped").exists()


def _alias_bomb(levels: int = 9) -> str:
    """The billion laughs: 9 levels of 9 aliases each, ~600 bytes that expand to 9**9 strings."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "".join(f"          {line}\n" for line in lines)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, monkeypatch):
    import merlib.config

    def expands(*args):  # system_config's dataclasses.asdict would expand the bomb: fail first,
        # and without a traceback, whose repr of the arguments would expand it too
        pytest.fail("the alias bomb got past the YAML loader", pytrace=False)

    monkeypatch.setattr(merlib.config, "check_config", expands)
    path = tmp_path / "bomb.yaml"
    path.write_text(
        "base: paper.yaml\nname: bomb\nsystems:\n  - name: s\n    modality: speech\n    overrides:\n"
        "      speech:\n        laughs:\n" + _alias_bomb()
    )
    assert path.stat().st_size < 1000
    with pytest.raises(
        ConfigError, match=r"bomb.yaml, line 10: YAML aliases \(\*a0\) are not allowed in configs; write the values out"
    ):
        load_config(path)


def test_a_plain_alias_is_refused_and_an_unused_anchor_is_allowed(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("base: paper.yaml\nname: &n aliased\nfeatures:\n  n_mels: &m 64\n  n_fft: *m\n")
    with pytest.raises(ConfigError, match=r"alias.yaml, line 5: YAML aliases \(\*m\) are not allowed"):
        load_config(path)
    path.write_text("base: paper.yaml\nname: &n anchored\n")
    assert load_config(path).name == "anchored"


def test_a_key_twice_in_one_mapping_is_refused_with_its_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("base: paper.yaml\nname: first\nfeatures:\n  n_mels: 64\n  hop_ms: 10\n  n_mels: 40\n")
    with pytest.raises(ConfigError, match=r"twice.yaml, line 6: key 'n_mels' appears twice in the same mapping"):
        load_config(path)
    path.write_text("base: paper.yaml\nname: first\nseed: 1\nname: second\n")
    with pytest.raises(ConfigError, match=r"twice.yaml, line 4: key 'name' appears twice"):
        load_config(path)


def test_a_config_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"base: paper.yaml\nname: caf\xe9\n")
    with pytest.raises(
        ConfigError, match=r"latin1.yaml, line 2: byte 26 \(0xe9\) is not UTF-8; save the file as UTF-8"
    ):
        load_config(path)


@pytest.mark.parametrize(
    "base, got", [("", "nothing"), ("[a.yaml, b.yaml]", r"list \['a.yaml', 'b.yaml'\]"), ("3", "int 3")]
)
def test_base_must_be_one_file_name(tmp_path, base, got):
    path = tmp_path / "based.yaml"
    path.write_text(f"base: {base}\nname: based\n")
    with pytest.raises(ConfigError, match=rf"based.yaml: base: must be the file name of one config \(a string, "
                                          rf"e.g. base: paper.yaml\), got {got}$"):  # fmt: skip
        load_config(path)


def test_set_values_follow_the_same_yaml_rules():
    with pytest.raises(ConfigError, match=r"--set 'data=\{a: &x \[1\], b: \*x\}', line 1: YAML aliases \(\*x\)"):
        config_overrides(["data={a: &x [1], b: *x}"])
    with pytest.raises(ConfigError, match=r"--set 'name=\*x', line 1: YAML aliases \(\*x\) are not allowed"):
        config_overrides(["name=*x"])
    with pytest.raises(ConfigError, match=r"--set 'data=\{folds: \[1\], folds: \[2\]\}', line 1: key 'folds' appears"):
        config_overrides(["data={folds: [1], folds: [2]}"])
    assert config_overrides(["text.model='*x'"]) == {"text": {"model": "*x"}}  # quoted, it is a string


def test_a_run_folder_saved_before_the_newer_keys_still_loads_as_it_ran(tmp_path):
    """ADDED_KEYS fill what an older run's resolved config.yaml lacks, with paper.yaml's values."""
    import yaml

    from merlib.config import ADDED_KEYS, save_config

    paper = paper_config()
    for (section, key), value in ADDED_KEYS.items():
        assert dataclasses.asdict(getattr(paper, section))[key] == value, (section, key)
    saved = save_config(paper, tmp_path / "config.yaml")
    values = yaml.safe_load(saved.read_text())
    for section, key in ADDED_KEYS:
        del values[section][key]
    saved.write_text(yaml.safe_dump(values, sort_keys=False))
    assert load_config(saved) == paper


def test_the_readme_config_for_your_own_corpus_loads(tmp_path):
    """The YAML block of README's "Your own corpus", as a user would save it."""
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Your own corpus") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```", section.index("```yaml\n") + 8)]
    path = tmp_path / "mine.yaml"
    path.write_text(block.replace("base: paper.yaml", f"base: {pathlib.Path('configs/paper.yaml').resolve()}"))
    config = load_config(path)
    assert config.labels == ("anger", "joy", "neutral", "sadness") and config.speech.loss == "weighted_ce"


def test_the_papers_table_is_shown_only_for_the_papers_task():
    from merlib.results import corpus_note, is_the_papers_task

    paper = paper_config()
    assert is_the_papers_task(paper) and "Padi et al. 2022" in corpus_note(paper)
    merged = paper_config({"data": {"labels": ["ang", "hap", "sad"], "label_map": {"neu": "sad"}}, "claims": []})
    assert not is_the_papers_task(merged) and "3 classes (ang, hap, sad)" in corpus_note(merged)
