"""``hil example NAME``: write one of the example files shipped with the package to the current
folder (``hil example`` alone lists them).

The examples are package data (``hil/examples/*.toml``), so they are there after a plain
``pip install``; in a checkout ``hil/examples`` is the top-level ``examples/`` folder.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path


def examples() -> dict[str, str]:
    """Example name (file name without ``.toml``) -> file text, of every shipped example."""
    folder = resources.files("hil") / "examples"
    out: dict[str, str] = {}
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.endswith(".toml"):
                out[entry.name[: -len(".toml")]] = entry.read_text(encoding="utf-8")
    return dict(sorted(out.items()))


def example_text(name: str) -> str:
    """The text of example ``name`` (with or without ``.toml``); ValueError naming the choices."""
    known = examples()
    key = name[: -len(".toml")] if name.endswith(".toml") else name
    if key not in known:
        raise ValueError(f"no example {name!r}; allowed: one of {list(known)}")
    return known[key]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("example", help="write a shipped example file (experiment or bench) to the current folder",
                       description="Write a shipped example file to the current folder (or --dir). "
                                   "Without NAME, list the examples. E.g. `hil example quickstart` "
                                   "then `hil run quickstart.toml`; `hil example bench-sim` then "
                                   "`hil program --bench bench-sim.toml --levels 8`.")
    p.add_argument("name", nargs="?", metavar="NAME", help="example name, e.g. quickstart or bench-sim")
    p.add_argument("--dir", type=Path, default=Path("."), help="folder to write into (default: current)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        for name, text in examples().items():
            first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
            print(f"{name:32s} {first}")
        return 0
    text = example_text(args.name)
    if not args.dir.is_dir():
        raise ValueError(f"--dir {str(args.dir)!r} is not a directory")
    name = args.name if args.name.endswith(".toml") else f"{args.name}.toml"
    target = args.dir / name
    if target.exists() and not args.overwrite:
        raise ValueError(f"{str(target)!r} exists; use --overwrite to replace it")
    target.write_text(text, encoding="utf-8")
    print(target)
    return 0
