"""Serve a simulated bench: SCPI/FLEX instruments over TCP (raw socket, as a LAN instrument),
the array board over a pseudo-terminal, all acting on one physics model.

pyvisa-py opens the SMU as ``TCPIP::127.0.0.1::<port>::SOCKET``; pyserial opens the board's
pty (``/dev/pts/N``, optionally through a stable symlink). The server binds to 127.0.0.1
unless told otherwise. Every loop is bounded by a short poll timeout and stops when
:meth:`SimServer.stop` is called.

:func:`build_sim_bench` builds the same instruments for in-process use
(:class:`~drivers.transport.SimTransport`), which is what fast tests use.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.bench import BenchConfig
from drivers.sim.instruments.array_board import SimArrayBoard
from drivers.sim.instruments.b1500 import SimB1500
from drivers.sim.instruments.b2900 import SimB2900
from drivers.sim.instruments.base import Faults, SimInstrument
from drivers.sim.instruments.bench_state import SimBench
from drivers.sim.instruments.switch_matrix import SimSwitchMatrix
from drivers.sim.pulse_sources import attach_sim_pulser
from drivers.sim.physics import ArrayPhysics
from drivers.sim.presets import get_preset
from drivers.instruments.switch_matrix import MatrixWiring
from drivers.transport import SimTransport, Transport

log = logging.getLogger(__name__)

POLL = 0.05  # s, the longest any server loop blocks
MAX_PENDING = 1 << 20  # bytes of an unterminated message before the connection is dropped


@dataclass
class SimBenchSet:
    """A simulated bench: shared state and its two instruments."""

    bench: SimBench
    smu: SimInstrument
    router: SimInstrument
    lock: threading.Lock
    pulser: SimInstrument | None = None  # a generator on its own port (an SPGU lives in the SimB1500)

    def transports(self) -> dict[str, Transport]:
        """In-process transports for :meth:`drivers.bench.BenchArray.from_config`."""
        smu_term = "\r\n" if isinstance(self.smu, SimB1500) else "\n"
        out = {"smu": SimTransport(self.smu, read_termination=smu_term), "router": SimTransport(self.router)}
        if self.pulser is not None:
            out["pulser"] = SimTransport(self.pulser)
        return out


def build_sim_bench(config: BenchConfig, faults: Faults | None = None, seed: int | None = None) -> SimBenchSet:
    """Build the simulated instruments a bench file describes (``[sim]`` gives physics and seed).

    The physics is seeded like ``SimArray(config.shape, config.sim.physics, seed)``.
    """
    preset = get_preset(config.sim.physics)
    seed = config.sim.seed if seed is None else seed
    physics = ArrayPhysics(preset.physics, config.shape, seed)
    bench = SimBench(physics, config.technology, config.timing)
    if faults is None:
        s = config.sim
        faults = Faults(s.p_timeout, s.p_garble, s.p_error, s.fault_seed)
    smu_faults = Faults(faults.p_timeout, faults.p_garble, faults.p_error, faults.seed)
    router_faults = Faults(faults.p_timeout, faults.p_garble, faults.p_error, faults.seed + 1)
    gate = config.smu.gate_channel or None
    if config.smu.model == "b2900":
        smu: SimInstrument = SimB2900(bench, config.smu.bitline_channel, gate, smu_faults)
    else:
        smu = SimB1500(bench, config.smu.bitline_channel, gate, smu_faults)
    r = config.router
    if r.model == "array_board":
        rows = max(128, config.shape[0])
        cols = max(128, config.shape[1])
        router: SimInstrument = SimArrayBoard(bench, (rows, cols), r.dac_vref, router_faults)
    else:
        wiring = MatrixWiring(r.card, r.bitline_port, r.gate_port, r.ground_port, r.bitline_first, r.wordline_first, r.sourceline_first)
        router = SimSwitchMatrix(bench, wiring, router_faults)
    pulser = attach_sim_pulser(config, smu, bench, Faults(faults.p_timeout, faults.p_garble, faults.p_error, faults.seed + 2))
    return SimBenchSet(bench, smu, router, threading.Lock(), pulser)


class SimServer:
    """Serve a :class:`SimBenchSet` over TCP and a pseudo-terminal.

    Args:
        config: the bench file (``[sim]``: host, ports, pty symlink, faults, seed).
        host: listen address (default ``config.sim.host``, normally 127.0.0.1).
        smu_port, router_port: TCP ports (0 = ephemeral; default from the config).
        pty_link: path of a symlink to the board's pty ("" = none; default from the config).
        faults: fault injection (default from the config).
    """

    def __init__(
        self,
        config: BenchConfig,
        host: str | None = None,
        smu_port: int | None = None,
        router_port: int | None = None,
        pty_link: str | None = None,
        faults: Faults | None = None,
        pulser_port: int | None = None,
    ) -> None:
        self.config = config
        self.host = config.sim.host if host is None else host
        self.smu_port = config.sim.smu_port if smu_port is None else smu_port
        self.router_port = config.sim.router_port if router_port is None else router_port
        self.pulser_port = config.sim.pulser_port if pulser_port is None else pulser_port
        self.pty_link = config.sim.pty_link if pty_link is None else pty_link
        self.sims = build_sim_bench(config, faults)
        self.resources: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._fds: list[int] = []

    # ------------------------------------------------------------------ lifetime
    def start(self) -> dict[str, str]:
        """Open the listeners; returns resource strings ``{"smu": ..., "router": ...}``."""
        try:
            self.resources["smu"] = self._serve_tcp(self.sims.smu, self.smu_port, "smu")
            if self.sims.pulser is not None:
                self.resources["pulser"] = self._serve_tcp(self.sims.pulser, self.pulser_port, "pulser")
            if isinstance(self.sims.router, SimArrayBoard):
                self.resources["router"] = self._serve_pty(self.sims.router)
            else:
                self.resources["router"] = self._serve_tcp(self.sims.router, self.router_port, "router")
        except BaseException:
            self.stop()
            raise
        log.info("sim server: %s", self.resources)
        return dict(self.resources)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, close every socket and the pty, remove the symlink."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._sockets.clear()
        self._fds.clear()
        if self.pty_link and os.path.islink(self.pty_link):
            os.unlink(self.pty_link)

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_state(self, path: str | Path) -> None:
        """Write the resource strings as JSON (for scripts that start a server)."""
        Path(path).write_text(json.dumps({"pid": os.getpid(), **self.resources}, indent=1))

    # ------------------------------------------------------------------ TCP
    def _serve_tcp(self, instrument: SimInstrument, port: int, name: str) -> str:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            srv.bind((self.host, port))
        except OSError as exc:
            srv.close()
            raise OSError(f"sim server: cannot listen on {self.host}:{port} for the {name}: {exc}") from exc
        srv.listen(4)
        self._sockets.append(srv)
        actual = srv.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, args=(srv, instrument), name=f"sim-{name}-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return f"TCPIP::{self.host}::{actual}::SOCKET"

    def _accept_loop(self, srv: socket.socket, instrument: SimInstrument) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([srv], [], [], POLL)
            if not r:
                continue
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            log.info("sim server: connection from %s", addr)
            t = threading.Thread(target=self._tcp_connection, args=(conn, instrument), daemon=True)
            t.start()
            self._threads.append(t)

    def _tcp_connection(self, conn: socket.socket, instrument: SimInstrument) -> None:
        pending = bytearray()
        with conn:
            while not self._stop.is_set():
                r, _, _ = select.select([conn], [], [], POLL)
                if not r:
                    continue
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                pending.extend(data)
                if len(pending) > MAX_PENDING:
                    log.error("sim server: unterminated message over %d bytes; dropping the connection", MAX_PENDING)
                    return
                for reply in self._messages(pending, instrument):
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return

    def _messages(self, pending: bytearray, instrument: SimInstrument) -> list[bytes]:
        replies = []
        while b"\n" in pending:
            cut = pending.index(b"\n") + 1
            message = bytes(pending[:cut])
            del pending[:cut]
            with self.sims.lock:
                reply = instrument.handle(message)
            if reply:
                replies.append(reply)
        return replies

    # ------------------------------------------------------------------ pty
    def _serve_pty(self, instrument: SimInstrument) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._fds.extend([master, slave])
        path = os.ttyname(slave)
        if self.pty_link:
            if os.path.lexists(self.pty_link):
                if not os.path.islink(self.pty_link):
                    raise OSError(f"sim server: {self.pty_link!r} exists and is not a symlink")
                os.unlink(self.pty_link)
            os.symlink(path, self.pty_link)
        t = threading.Thread(target=self._pty_loop, args=(master, instrument), name="sim-board-pty", daemon=True)
        t.start()
        self._threads.append(t)
        return self.pty_link or path

    def _pty_loop(self, master: int, instrument: SimInstrument) -> None:
        pending = bytearray()
        while not self._stop.is_set():
            r, _, _ = select.select([master], [], [], POLL)
            if not r:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:
                continue
            pending.extend(data)
            if len(pending) > MAX_PENDING:
                pending.clear()
            for reply in self._messages(pending, instrument):
                view = memoryview(reply)
                while view and not self._stop.is_set():
                    _, w, _ = select.select([], [master], [], POLL)
                    if w:
                        n = os.write(master, view)
                        view = view[n:]


def resources_overrides(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Bench-file overrides pointing a config at a running server's resources (pyvisa-py)."""
    out: dict[str, dict[str, Any]] = {"smu": {"resource": resources["smu"], "backend": "@py"}}
    router = resources["router"]
    out["router"] = {"resource": router} if not router.startswith("TCPIP") else {"resource": router, "backend": "@py"}
    if "pulser" in resources:
        out["pulser"] = {"resource": resources["pulser"], "backend": "@py"}
    return out
