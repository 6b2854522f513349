"""Instrument timing model: what each operation would cost on a real bench.

A bench addresses cells one after another (route, settle, source, measure), so the costs add
up per cell even where the simulation applies an operation to a whole mask at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchTiming:
    """Per-cell time costs, in seconds.

    Attributes:
        aperture: SMU integration (aperture) time of one read, s. A read costs
            ``read_overhead + aperture``, which spans 1-20 ms over the allowed apertures.
        read_overhead: fixed cost of a read beyond integration (trigger, fetch), s.
        pulse_overhead: fixed cost of one pulse beyond its width (arming, trigger, source settle), s.
        route_settle: time to switch the router to a new cell and let it settle, s.
    """

    aperture: float = 1.0e-3
    read_overhead: float = 0.6e-3
    pulse_overhead: float = 0.4e-3
    route_settle: float = 0.5e-3

    #: Allowed aperture range, s; a read then costs 1-20 ms with the default overhead.
    MIN_APERTURE = 0.4e-3
    MAX_APERTURE = 19.4e-3

    def __post_init__(self) -> None:
        if not (self.MIN_APERTURE <= self.aperture <= self.MAX_APERTURE):
            raise ValueError(
                f"aperture={self.aperture:.3e} s outside the allowed range "
                f"[{self.MIN_APERTURE:.1e}, {self.MAX_APERTURE:.1e}] s"
            )
        for name in ("read_overhead", "pulse_overhead", "route_settle"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 s, got {getattr(self, name)!r}")

    @property
    def read_time(self) -> float:
        """Cost of one cell read, s (route + settle not included)."""
        return self.read_overhead + self.aperture

    def pulse_time(self, width: float) -> float:
        """Cost of one pulse of ``width`` seconds, s (route + settle not included)."""
        return self.pulse_overhead + float(width)


#: Bench time of one pulse of a pulse source beyond its width, s, by ``[pulser].model``
#: (estimates, not measurements: one message round trip on GPIB or LAN that starts the
#: pulse and reports its end, ``SRP;SPST?`` / ``*TRG;*OPC?``, plus the instrument's own
#: arming). A bench file's ``[pulser].pulse_overhead`` or ``[timing].pulse_overhead``
#: replaces them.
PULSE_SOURCE_OVERHEAD = {"b1525a": 1.0e-3, "33500b": 1.5e-3}
