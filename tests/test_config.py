"""Configs are data: YAML → dataclasses, paper values by default, typos are errors."""
import pathlib

import pytest

from merlib.config import Config, ConfigError, load_config


def test_paper_config_holds_the_paper_values():
    config = load_config("configs/paper.yaml")
    assert config.features.n_mels == 128 and config.features.win_ms == 25 and config.features.hop_ms == 10
    assert config.data.folds == [1, 2, 3, 4, 5]
    # the YAML and the dataclass defaults agree: the paper's values are the defaults
    assert config == Config(name="paper")


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: " + str((tmp_path / "..").resolve()) + "/x.yaml\n")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(path)
    path.write_text("features:\n  n_mel: 64\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.features: unknown key\(s\) n_mel"):
        load_config(path)
    path.write_text("features:\n  n_mels: lots\n")
    with pytest.raises(ConfigError, match=r"features.n_mels: expected int"):
        load_config(path)


def test_base_and_overrides(tmp_path):
    import shutil

    shutil.copy("configs/paper.yaml", tmp_path / "paper.yaml")
    (tmp_path / "small.yaml").write_text("base: paper.yaml\nname: small\nfeatures:\n  n_mels: 64\n")
    config = load_config(tmp_path / "small.yaml", overrides={"data": {"folds": [3]}})
    assert (config.name, config.features.n_mels, config.features.hop_ms, config.data.folds) == ("small", 64, 10.0, [3])


def test_make_demo_refuses_an_extra_config_with_another_run_folder(tmp_path, capsys):
    from merlib.cli import main

    (tmp_path / "other.yaml").write_text(f"base: {pathlib.Path('configs/demo_ge2e.yaml').resolve()}\nname: other\n")
    assert main(["demo", "--also", str(tmp_path / "other.yaml"), "--runs", str(tmp_path / "runs")]) == 2
    assert "set name: demo in it" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
