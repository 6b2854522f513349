"""Simulated B2200A-class switch matrix (SCPI route commands), the router of a SimBench.

Supported: ``*IDN? *RST *CLS *OPC?``, ``:SYST:ERR?``, ``:ROUT:OPEN:CARD ALL|<n>``,
``:ROUT:CLOS (@list)``, ``:ROUT:CLOS? (@list)``, ``:ROUT:OPEN (@list)``, ``:ROUT:OPEN? (@list)``.
Channel codes ``cIIOO`` (card, input 1..14, output 1..48).
"""

from __future__ import annotations

import numpy as np

from drivers.sim.instruments.base import Faults, SimCommandError
from drivers.sim.instruments.bench_state import SimBench
from drivers.sim.instruments.scpi import ScpiInstrument
from drivers.instruments.switch_matrix import MatrixWiring


class SimSwitchMatrix(ScpiInstrument):
    """Simulated switch matrix; the cell a point reaches follows from the closed relays."""

    idn = "Keysight Technologies,B2201A,SIM00002,1.0"

    def __init__(self, bench: SimBench | None, wiring: MatrixWiring, faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.bench = bench
        self.wiring = wiring
        self.closed: set[tuple[int, int, int]] = set()
        self.relay_operations = 0
        if bench is not None:
            bench.attach_router(self)

    def reset(self) -> None:
        self.closed = set()

    def _channels(self, args: str) -> list[tuple[int, int, int]]:
        a = args.strip()
        if not (a.startswith("(@") and a.endswith(")")):
            raise SimCommandError(-104, '"Data type error"')
        out = []
        for item in a[2:-1].split(","):
            item = item.strip()
            if len(item) != 5 or not item.isdigit():
                raise SimCommandError(-224, '"Illegal parameter value; channel must be cIIOO"')
            card, inp, outp = int(item[0]), int(item[1:3]), int(item[3:5])
            if not (1 <= inp <= 14 and 1 <= outp <= 48 and 0 <= card <= 4):
                raise SimCommandError(-222, '"Data out of range"')
            out.append((card, inp, outp))
        return out

    def _command(self, nodes: tuple[str, ...], channel: int | None, query: bool, args: str) -> str | None:
        if query:
            err = self._system_error(nodes)
            if err is not None:
                return err
        if nodes == ("ROUT", "OPEN", "CARD") and not query:
            a = args.strip().upper()
            if a == "ALL":
                self.closed.clear()
            elif a.isdigit():
                self.closed = {c for c in self.closed if c[0] != int(a)}
            else:
                raise SimCommandError(-224, '"Illegal parameter value"')
            return None
        if nodes in (("ROUT", "CLOS"), ("CLOS",)):
            chans = self._channels(args)
            if query:
                return ",".join("1" if c in self.closed else "0" for c in chans)
            self.closed.update(chans)
            self.relay_operations += len(chans)
            self.busy_time += 5e-3  # relay settle
            return None
        if nodes in (("ROUT", "OPEN"), ("OPEN",)):
            chans = self._channels(args)
            if query:
                return ",".join("0" if c in self.closed else "1" for c in chans)
            self.closed.difference_update(chans)
            return None
        raise SimCommandError(-113, '"Undefined header"')

    # ------------------------------------------------------------------ router interface
    def _connected_cell(self) -> int:
        w = self.wiring
        rows, cols = self.bench.shape if self.bench is not None else (0, 0)
        card_ok = lambda c: w.card == 0 or c == w.card  # noqa: E731
        bl = [o - w.bitline_first for (c, i, o) in self.closed if card_ok(c) and i == w.bitline_port and 0 <= o - w.bitline_first < cols]
        wl = [o - w.wordline_first for (c, i, o) in self.closed if card_ok(c) and i == w.gate_port and 0 <= o - w.wordline_first < rows]
        sl = [o - w.sourceline_first for (c, i, o) in self.closed if card_ok(c) and i == w.ground_port and 0 <= o - w.sourceline_first < rows]
        if len(bl) == 1 and len(wl) == 1 and sl == wl:
            return wl[0] * cols + bl[0]
        return -1

    def point_gates(self, n: int, edges: bool = False) -> np.ndarray | None:
        return None  # the gate comes through the matrix from an SMU channel

    def point_cells(self, n: int, edges: bool = False) -> np.ndarray:
        return np.full(n, self._connected_cell())
