"""The README's two set-up commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_two_commands_and_ci_runs_the_test_one():
    main_job, tests = readme_commands()
    assert "hil " in main_job and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, "CI must run the README's test command verbatim"


def test_readme_names_the_packages_ci_installs():
    text = (ROOT / "README.md").read_text()
    said = re.search(r"CI runs exactly this line after `apt-get install -y ([^`]+)`", text).group(1).split()
    ci = re.search(r"apt-get install -y -qq ([^>\n]+)", (ROOT / ".ci" / "run").read_text()).group(1).split()
    assert said == ci and "hdf5-tools" in ci
