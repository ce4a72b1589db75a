"""The conda path (environment.yml) and the make path (pip) install the same list, and
pyproject.toml keeps loose lower bounds so that installing course_lib on Colab never replaces torch."""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from env_requirements import pip_requirements  # noqa: E402


def env_pins() -> dict[str, str]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip_block:
        req = Requirement(line)
        (op, version), = [(s.operator, s.version) for s in req.specifier]
        assert op == "==", f"environment.yml pins exact versions for reproducibility: {line}"
        pins[canonicalize_name(req.name)] = version
    return pins


def test_make_path_reads_the_same_list_as_conda():
    assert [Requirement(r).name for r in pip_requirements(ROOT / "environment.yml")] == \
           [Requirement(r).name for r in yaml.safe_load((ROOT / "environment.yml").read_text())
            ["dependencies"][-1]["pip"]]
    makefile = (ROOT / "Makefile").read_text()
    assert "tools/env_requirements.py environment.yml" in makefile and "pip install" in makefile


def test_installed_versions_are_the_pinned_ones():
    pins = env_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    for name, version in pins.items():
        installed = md.version(name)
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, environment.yml pins {version}"


def test_pyproject_has_loose_lower_bounds_within_the_environment():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = env_pins()
    for line in project["dependencies"]:
        req = Requirement(line)
        ops = {s.operator for s in req.specifier}
        assert ops == {">="}, f"{line}: only lower bounds, so Colab's own torch is never replaced"
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in environment.yml"
        assert req.specifier.contains(pins[name]), f"environment.yml's {name}=={pins[name]} violates {line}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M) and "COURSE_PROFILE=quick" in ci and "COURSE_DATA_DIR" in ci
