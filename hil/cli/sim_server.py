"""``hil sim-server``: serve a simulated bench (SCPI over TCP, the array board on a pty).

Run it in one shell, then point any bench command at the same bench file in another::

    hil sim-server --bench examples/bench-sim.toml
    hil program --bench examples/bench-sim.toml --levels 8 --out run.h5

It binds to 127.0.0.1 unless ``--host`` says otherwise, prints the resource strings, and
stops cleanly on SIGINT/SIGTERM (or after ``--duration`` seconds).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from drivers.bench import load_bench
from drivers.sim.instruments.base import Faults
from drivers.sim.server import SimServer

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim-server", help="serve simulated instruments for a bench file",
                       description="Serve the simulated SMU (raw SCPI socket on TCP) and router (array board on a "
                                   "pseudo-terminal, or switch matrix on TCP) described by a bench file, acting on "
                                   "a seeded physics model.")
    p.add_argument("--bench", type=Path, required=True, help="bench TOML file (its [sim] section configures the server)")
    p.add_argument("--host", default=None, help="listen address (default: [sim].host, normally 127.0.0.1)")
    p.add_argument("--smu-port", type=int, default=None, help="SMU TCP port (0 = ephemeral; default [sim].smu_port)")
    p.add_argument("--router-port", type=int, default=None, help="switch-matrix TCP port (default [sim].router_port)")
    p.add_argument("--pulser-port", type=int, default=None, help="pulse-generator TCP port (default [sim].pulser_port)")
    p.add_argument("--pty-link", default=None, help="symlink to the board's pty (default [sim].pty_link)")
    p.add_argument("--seed", type=int, default=None, help="physics seed (default [sim].seed)")
    p.add_argument("--p-timeout", type=float, default=None, help="probability a reply is dropped")
    p.add_argument("--p-garble", type=float, default=None, help="probability a reply is corrupted")
    p.add_argument("--p-error", type=float, default=None, help="probability a command fails with an instrument error")
    p.add_argument("--state-file", type=Path, default=None, help="write the resource strings here as JSON")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until signalled)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, dict] = {"sim": {}}
    for name in ("seed", "p_timeout", "p_garble", "p_error"):
        if getattr(args, name) is not None:
            overrides["sim"][name] = getattr(args, name)
    config = load_bench(args.bench, overrides)
    if args.duration is not None and not args.duration > 0:
        raise ValueError(f"--duration {args.duration} must be > 0 s")
    s = config.sim
    faults = Faults(s.p_timeout, s.p_garble, s.p_error, s.fault_seed)
    server = SimServer(config, host=args.host, smu_port=args.smu_port, router_port=args.router_port,
                       pty_link=args.pty_link, faults=faults, pulser_port=args.pulser_port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("sim-server: signal %d, stopping", signum)
        stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    state_file = args.state_file or (Path(s.state_file) if s.state_file else None)
    try:
        resources = server.start()
        if state_file is not None:
            server.write_state(state_file)
        print(f"hil sim-server: {config.name}: {config.shape[0]}x{config.shape[1]} {s.physics} seed {s.seed}", flush=True)
        print(f"  smu    ({config.smu.model}): {resources['smu']}", flush=True)
        print(f"  router ({config.router.model}): {resources['router']}", flush=True)
        if config.pulser is not None:
            where = resources.get("pulser", f"inside the SMU mainframe, channel {config.pulser.channel}")
            print(f"  pulser ({config.pulser.model}): {where}", flush=True)
        print("  stop with Ctrl-C", flush=True)
        stop.wait(args.duration)
    finally:
        server.stop()
        if state_file is not None and state_file.exists():
            state_file.unlink()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    c_smu, c_router = server.sims.smu.counters, server.sims.router.counters
    print(f"hil sim-server: stopped; smu {c_smu.replies} replies to {c_smu.messages} messages, "
          f"router {c_router.replies} replies; bench time {server.sims.bench.bench_time:.3f} s", file=sys.stderr)
    return 0

