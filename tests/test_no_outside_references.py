"""No file of the project cites a document outside the project (planning notes, the papers' or
datasets' copies on the development machine): papers are cited by their published reference."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Built from pieces so that this file does not match itself.
FORBIDDEN = [
    re.compile("FIND" + "INGS"),
    re.compile(r"find" + r"ings\.md", re.IGNORECASE),
    re.compile(r"(\.\./)+" + "sha" + r"red\b"),
    re.compile(r"/" + "work" + r"/(sha" + r"red|main|wt)\b"),
    re.compile("sha" + r"red/(papers|datasets)"),
    re.compile(r"papers/[\w.-]+\.md"),
]


def project_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # not a checkout: walk the tree
        files = [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    return [f for f in files if f.exists() and f.suffix not in (".h5", ".png", ".gz", ".bit", ".hwh")]


def offending_lines(files: list[Path]) -> list[str]:
    bad = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in FORBIDDEN):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return bad


def test_no_project_file_cites_a_document_outside_the_project():
    files = project_files()
    assert len(files) > 100  # the scan sees the tree
    assert offending_lines(files) == []


def test_the_scan_catches_each_kind_of_outside_reference(tmp_path):
    samples = ["see " + "FIND" + "INGS.md", "--data-dir ../" + "sha" + "red/datasets",
               "/" + "work/" + "sha" + "red/pap" + "ers/x.md", "pap" + "ers/metaplasticity-multilevel-memristors.md"]
    files = []
    for k, text in enumerate(samples):
        f = tmp_path / f"f{k}.py"
        f.write_text(f"x = 1\n# {text}\n")
        files.append(f)
    clean = tmp_path / "clean.py"
    clean.write_text("# D'Agostino et al., arXiv:2306.12142, Fig. 4b\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        found = offending_lines(files + [clean])
    finally:
        ROOT = old
    assert len(found) == len(samples) and all(":2:" in line for line in found)


def test_version_is_the_installed_distributions():
    """hil._version is the one place of the version: the installed metadata must agree."""
    from importlib.metadata import version

    import hil

    assert hil.__version__ == version("memristor-hil")
