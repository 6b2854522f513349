"""``hil info``: versions, technologies and optional components available here."""

from __future__ import annotations

import argparse
import importlib.util

from drivers.sim.presets import PRESETS
from hil import __version__


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions, technologies and optional components")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"hil {__version__}")
    for name, preset in PRESETS.items():
        tech = preset.technology
        low, high = tech.g_window
        print(f"technology {name}: window {low:.3e}..{high:.3e} S, levels {len(tech.levels) or 'linspace'}, "
              f"V_read {tech.v_read} V; {tech.reference}")
    for module in ("pyvisa", "pyvisa_py", "serial", "pynq", "cocotb"):
        found = importlib.util.find_spec(module) is not None
        print(f"{module}: {'available' if found else 'not installed'}")
    return 0
