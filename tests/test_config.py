"""Configs are data: YAML → dataclasses, the paper's values in one place, the plan declared,
and every mistake refused at load with the file, the key and the allowed values."""

import dataclasses
import pathlib
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
    from merlib.train.common import BACKBONES
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
    with pytest.raises(ConfigError, match="classes must be two of ang, hap, neu, sad"):
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
