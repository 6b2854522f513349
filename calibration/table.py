"""Level tables: weight level -> target conductance -> programming conditions, with the spread seen.

A :class:`LevelTable` is what program-and-verify and the learning experiments read. Per level
it holds (all SI):

==================  ======  ============================================================
dataset             unit    meaning
==================  ======  ============================================================
``level``           --      level index 0..L-1 (ascending conductance)
``g_target``        S       target conductance
``i_c``             A       compliance at which the median cell reached the target
``v_gate``          V       gate voltage giving ``i_c`` through the access transistor
``v_gate_first``    V       first guess for an incremental-gate (IGVVA) ramp: the gate of
                            ``i_c * exp(-margin * sigma)``, so most cells start below the level
``v_stop``          V       RESET stop voltage used before (re)programming the level
``sigma``           ln      spread of ln G seen after one SET at ``v_gate`` (all cells)
``g_median``        S       median conductance seen after one SET at ``v_gate``
``n_cells``         --      cells behind ``sigma`` and ``g_median``
==================  ======  ============================================================

plus the low-conductance state (``lcs_*`` attributes) and root attributes: ``schema_version``,
``technology``, ``source`` (``"fit of characterisation run ..."`` or ``"paper figure ..."``),
``created`` (ISO date), ``package_version``, ``v_read``, ``transistor_v_th``/``_k``,
``margin``, ``device_model`` (JSON of the fitted :class:`DeviceParams`) and ``fit`` (JSON of the
estimates with their standard errors).

Tables are validated on build and on load; :class:`TableError` names what is wrong. They are
written to a temporary file and renamed, so a table file is never half-written.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calibration.data import MIN_CELLS, CalibrationDataError, CharacterisationData

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"
SUPPORTED_SCHEMAS = ("1.0",)
LEVEL_FIELDS = ("level", "g_target", "i_c", "v_gate", "v_gate_first", "v_stop", "sigma", "g_median", "n_cells")
ATTR_FIELDS = ("schema_version", "technology", "source", "created", "package_version", "v_read",
               "transistor_v_th", "transistor_k", "margin", "lcs_v_stop", "lcs_g_median", "lcs_sigma", "lcs_n")


class TableError(CalibrationDataError):
    """A level table is malformed, inconsistent, or cannot be built from the data given."""


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # only when a table is written

    try:
        return version("memristor-hil")
    except PackageNotFoundError:
        return "0.1.0+src"


@dataclass
class LevelData:
    """Multi-level states measured after one compliance-limited SET per level (Fig. 4b).

    Attributes:
        v_gate: gate per level, V, (L,).
        g: reads after the SET, S, (L, n) over the n cells used.
        v_stop: RESET stop voltage before each SET and for the LCS, V.
        g_lcs: reads of the low-conductance state, S, (n,).
    """

    v_gate: np.ndarray
    g: np.ndarray
    v_stop: float
    g_lcs: np.ndarray


@dataclass
class LevelTable:
    """Weight level -> target conductance -> programming conditions (see module docstring)."""

    technology: str
    source: str
    level: np.ndarray
    g_target: np.ndarray
    i_c: np.ndarray
    v_gate: np.ndarray
    v_gate_first: np.ndarray
    v_stop: np.ndarray
    sigma: np.ndarray
    g_median: np.ndarray
    n_cells: np.ndarray
    v_read: float
    transistor_v_th: float
    transistor_k: float
    margin: float
    lcs_v_stop: float
    lcs_g_median: float
    lcs_sigma: float
    lcs_n: int
    created: str = field(default_factory=lambda: _dt.date.today().isoformat())
    package_version: str = field(default_factory=package_version)
    schema_version: str = SCHEMA_VERSION
    device_model: str = ""
    fit: str = ""

    @property
    def n_levels(self) -> int:
        return int(np.asarray(self.g_target).size)

    # ------------------------------------------------------------------ validation
    def validate(self) -> LevelTable:
        """Check required fields, lengths, finiteness, signs and monotonic levels; return self."""
        if self.schema_version not in SUPPORTED_SCHEMAS:
            raise TableError(f"table schema_version {self.schema_version!r} not supported (supported: {SUPPORTED_SCHEMAS})")
        for name in ("technology", "source"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise TableError(f"table attribute {name!r} is missing or empty")
        n = self.n_levels
        if n < 2:
            raise TableError(f"table has {n} level(s); need at least 2")
        for name in LEVEL_FIELDS:
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != (n,):
                raise TableError(f"table field {name!r} has shape {arr.shape}, expected ({n},) like g_target")
            if not np.all(np.isfinite(arr)):
                raise TableError(f"table field {name!r} has non-finite values: {arr.tolist()}")
        for name in ("g_target", "i_c", "v_gate", "v_gate_first", "g_median"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if np.any(arr <= 0):
                raise TableError(f"table field {name!r} must be > 0, got {arr.tolist()}")
        for name in ("g_target", "i_c", "v_gate"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if np.any(np.diff(arr) <= 0):
                raise TableError(f"table field {name!r} must increase strictly with the level, got {arr.tolist()}")
        if np.any(np.asarray(self.v_gate_first) > np.asarray(self.v_gate) + 1e-12):
            raise TableError("table field 'v_gate_first' must not exceed 'v_gate' (the ramp starts below the level)")
        if np.any(np.asarray(self.v_stop) >= 0):
            raise TableError(f"table field 'v_stop' must be < 0 V, got {np.asarray(self.v_stop).tolist()}")
        if np.any(np.asarray(self.sigma) < 0):
            raise TableError(f"table field 'sigma' must be >= 0, got {np.asarray(self.sigma).tolist()}")
        nc = np.asarray(self.n_cells)
        if np.any(nc < 1) or np.any(nc != np.round(nc)):
            raise TableError(f"table field 'n_cells' must be positive integers, got {nc.tolist()}")
        if not np.array_equal(np.asarray(self.level), np.arange(n)):
            raise TableError(f"table field 'level' must be 0..{n - 1}, got {np.asarray(self.level).tolist()}")
        for name in ("v_read", "transistor_k", "lcs_g_median"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise TableError(f"table attribute {name!r} must be > 0, got {v!r}")
        for name in ("transistor_v_th", "margin", "lcs_sigma"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v >= 0):
                raise TableError(f"table attribute {name!r} must be >= 0, got {v!r}")
        if not (np.isfinite(self.lcs_v_stop) and self.lcs_v_stop < 0):
            raise TableError(f"table attribute 'lcs_v_stop' must be < 0 V, got {self.lcs_v_stop!r}")
        if float(self.lcs_g_median) >= float(np.asarray(self.g_target)[0]):
            raise TableError(
                f"LCS median {self.lcs_g_median:.3e} S is not below the lowest level {self.g_target[0]:.3e} S"
            )
        return self

    # ------------------------------------------------------------------ use
    def first_guess_map(self, targets: np.ndarray) -> np.ndarray:
        """Per-cell first-guess gate voltage (V) for IGVVA, same shape as ``targets`` (S).

        Between table levels, ``(v_gate_first - v_th)^2`` (proportional to the compliance) is
        interpolated linearly in ln G; outside the table it is extrapolated along the end
        segments. NaN targets (cells not programmed) get the lowest first guess.
        """
        t = np.asarray(targets, dtype=float)
        g = np.log(np.asarray(self.g_target, dtype=float))
        u = np.log((np.asarray(self.v_gate_first, dtype=float) - self.transistor_v_th) ** 2)
        x = np.log(np.where(np.isfinite(t) & (t > 0), t, self.g_target[0]))
        y = np.interp(x, g, u)
        lo, hi = x < g[0], x > g[-1]
        y = np.where(lo, u[0] + (x - g[0]) * (u[1] - u[0]) / (g[1] - g[0]), y)
        y = np.where(hi, u[-1] + (x - g[-1]) * (u[-1] - u[-2]) / (g[-1] - g[-2]), y)
        return self.transistor_v_th + np.sqrt(np.exp(y))

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(datasets, attributes) for :meth:`hil.store.RunStore.save_calibration`."""
        arrays = {name: np.asarray(getattr(self, name)) for name in LEVEL_FIELDS}
        attrs = {name: _plain(getattr(self, name)) for name in ATTR_FIELDS}
        attrs.update(device_model=self.device_model, fit=self.fit)
        return arrays, attrs

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Validate and write to ``path`` atomically (temporary file in the same directory, renamed)."""
        self.validate()
        path = Path(path)
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise OSError(f"table directory {str(parent)!r} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                for name in LEVEL_FIELDS:
                    dtype = "<i8" if name in ("level", "n_cells") else "<f8"
                    f.create_dataset(name, data=np.asarray(getattr(self, name)).astype(dtype))
                for name in ATTR_FIELDS:
                    f.attrs[name] = _plain(getattr(self, name))
                f.attrs["device_model"] = self.device_model
                f.attrs["fit"] = self.fit
                f.attrs["units"] = json.dumps({"g_target": "S", "i_c": "A", "v_gate": "V", "v_gate_first": "V",
                                               "v_stop": "V", "sigma": "ln", "g_median": "S", "v_read": "V"})
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("level table (%d levels, %s) written to %s", self.n_levels, self.technology, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LevelTable:
        """Read and validate a table file; :class:`TableError` names a missing or bad field."""
        path = Path(path)
        if not path.is_file():
            raise TableError(f"table file {str(path)!r} does not exist")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise TableError(f"{str(path)!r} is not an HDF5 table file ({exc})") from None
        with f:
            kw: dict[str, Any] = {}
            for name in LEVEL_FIELDS:
                if name not in f:
                    raise TableError(f"table {str(path)!r} lacks the dataset {name!r}")
                kw[name] = f[name][()]
            for name in ATTR_FIELDS:
                if name not in f.attrs:
                    raise TableError(f"table {str(path)!r} lacks the attribute {name!r}")
                v = f.attrs[name]
                kw[name] = v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
            for name in ("device_model", "fit"):
                v = f.attrs.get(name, "")
                kw[name] = v.decode() if isinstance(v, bytes) else str(v)
        try:
            table = cls(**kw)
        except TypeError as exc:
            raise TableError(f"table {str(path)!r}: {exc}") from None
        for name in ("technology", "source", "created", "package_version", "schema_version"):
            setattr(table, name, str(getattr(table, name)))
        try:
            return table.validate()
        except TableError as exc:
            raise TableError(f"table {str(path)!r}: {exc}") from None


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


# ---------------------------------------------------------------------- defaults
def default_table_path(technology: str) -> Path:
    """Path of the table shipped in the package for ``technology`` (``"hfo2"``, ``"siox"``)."""
    p = resources.files("calibration") / "tables" / f"{technology}.h5"
    path = Path(str(p))
    if not path.is_file():
        shipped = sorted(q.stem for q in Path(str(resources.files("calibration") / "tables")).glob("*.h5"))
        raise TableError(f"no default table for technology {technology!r}; shipped: {shipped}")
    return path


def default_table(technology: str) -> LevelTable:
    """The validated default table shipped for ``technology``."""
    return LevelTable.load(default_table_path(technology))


# ---------------------------------------------------------------------- building
def build_table(
    data: CharacterisationData,
    fit: Any,
    targets: np.ndarray,
    *,
    margin: float = 0.5,
    v_stop: float | None = None,
    source: str | None = None,
    min_cells: int = MIN_CELLS,
    hrs_clearance: float = 1.5,
) -> LevelTable:
    """Programming conditions for ``targets`` from the LRS-vs-I_C and HRS-vs-V_STOP data.

    The compliance of each level is where the median conductance measured in the sweep reaches
    the target (log-log interpolation between the sweep's conditions; no extrapolation). The
    spread is the combined (cycle-to-cycle and device-to-device) ln spread of the sweep,
    interpolated the same way; :func:`apply_levels` replaces it by the spread seen at the
    level's own conditions.

    Args:
        data: characterisation data.
        fit: the :class:`calibration.fit.FitResult` of ``data`` (stored in the table, and its
            HRS law chooses ``v_stop``).
        targets: target conductances, S, (L,), strictly ascending.
        margin: first-guess safety margin, in units of the level's ln spread.
        v_stop: RESET stop voltage, V (< 0). Default: the smallest |V_STOP| of the sweep whose
            HRS upper tail (median x exp(3 sigma)) lies ``hrs_clearance`` times below the lowest
            level; if none does, the deepest V_STOP of the sweep, with a logged warning.
        source: provenance string (default: ``"fit of characterisation <data.source>"``).
        min_cells: fewest usable cells per sweep condition.
        hrs_clearance: required ratio of the lowest level to the HRS upper tail.

    Raises:
        TableError: targets not ascending/positive, a condition with too few cells or NaN
            statistics, or a target outside the conductances the sweep reached.
    """
    from calibration.fit import condition_stats  # local: fit imports nothing from here

    data.validate()
    t = np.asarray(targets, dtype=float)
    if t.ndim != 1 or t.size < 2:
        raise TableError(f"targets must be 1-D with at least 2 levels, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise TableError(f"targets must be finite, > 0 S and strictly ascending, got {t.tolist()}")
    if not (np.isfinite(margin) and margin >= 0):
        raise TableError(f"margin={margin!r} must be >= 0 (units of the level's ln spread)")
    stats = condition_stats(data)
    i_c = np.asarray(stats["lrs_i_c"])
    med = np.asarray(stats["lrs_median_g"])
    sig = np.asarray(stats["lrs_sigma_ln"])
    n = np.asarray(stats["lrs_n"])
    for j in range(i_c.size):
        if n[j] < min_cells:
            raise TableError(f"I_C = {i_c[j]:.3e} A: only {int(n[j])} cells switched; need {min_cells}")
        if not (np.isfinite(med[j]) and np.isfinite(sig[j])):
            raise TableError(f"I_C = {i_c[j]:.3e} A: median or spread is NaN")
    if np.any(np.diff(med) <= 0):
        raise TableError(f"median LRS does not increase with I_C ({med.tolist()} S): the data do not follow a compliance law")
    if t[0] < med[0] or t[-1] > med[-1]:
        bad = t[0] if t[0] < med[0] else t[-1]
        raise TableError(
            f"target {bad:.3e} S lies outside the median conductances the sweep reached "
            f"[{med[0]:.3e}, {med[-1]:.3e}] S (I_C {i_c[0]:.3e}..{i_c[-1]:.3e} A); extend the I_C sweep"
        )
    lt, lm = np.log(t), np.log(med)
    ic_level = np.exp(np.interp(lt, lm, np.log(i_c)))
    sig_level = np.interp(lt, lm, sig)
    tr = data.transistor
    v_gate = tr.gate_for(ic_level)
    v_first = tr.gate_for(ic_level * np.exp(-margin * sig_level))

    hrs_stop = np.asarray(stats["hrs_v_stop"])
    hrs_med = np.asarray(stats["hrs_median_r"])
    hrs_sig = np.asarray(stats["hrs_sigma_ln"])
    if v_stop is None:
        tail = 1.0 / (hrs_med * np.exp(-3.0 * hrs_sig))  # G upper tail, S
        ok = tail * hrs_clearance <= t[0]
        if ok.any():
            i = int(np.flatnonzero(ok)[0])
        else:
            i = int(np.argmax(np.abs(hrs_stop)))
            log.warning("no V_STOP of the sweep (%s V) puts the HRS tail %gx below the lowest level %.3e S; "
                        "using the deepest, %.3g V", hrs_stop.tolist(), hrs_clearance, t[0], hrs_stop[i])
        v_stop = float(hrs_stop[i])
        lcs_med, lcs_sig, lcs_n = 1.0 / hrs_med[i], hrs_sig[i], int(stats["hrs_n"][i])
    else:
        if not v_stop < 0:
            raise TableError(f"v_stop={v_stop!r} must be < 0 V")
        lcs_med = float(np.exp(np.interp(abs(v_stop), np.abs(hrs_stop), -np.log(hrs_med))))
        lcs_sig = float(np.interp(abs(v_stop), np.abs(hrs_stop), hrs_sig))
        lcs_n = int(min(stats["hrs_n"]))
    levels = t.size
    n_lvl = np.interp(lt, lm, n).round().astype(int)
    table = LevelTable(
        technology=data.technology,
        source=source or f"fit of characterisation {data.source}",
        level=np.arange(levels), g_target=t, i_c=ic_level, v_gate=v_gate, v_gate_first=v_first,
        v_stop=np.full(levels, float(v_stop)), sigma=sig_level, g_median=t.copy(), n_cells=n_lvl,
        v_read=data.v_read, transistor_v_th=tr.v_th, transistor_k=tr.k, margin=float(margin),
        lcs_v_stop=float(v_stop), lcs_g_median=float(lcs_med), lcs_sigma=float(lcs_sig), lcs_n=lcs_n,
        device_model=json.dumps(dataclasses.asdict(fit.params), sort_keys=True, default=float),
        fit=fit.to_json(),
    )
    return table.validate()


def apply_levels(table: LevelTable, levels: LevelData, min_cells: int = MIN_CELLS) -> LevelTable:
    """The table with the spread, median and cell count seen in a multi-level run at its conditions.

    The first guess is recomputed from the spread seen: ``v_gate_first`` is the gate of
    ``i_c * exp(-margin * sigma)``.

    Raises:
        TableError: shape mismatch, too few finite reads at a level, or non-positive reads.
    """
    g = np.asarray(levels.g, dtype=float)
    if g.ndim != 2 or g.shape[0] != table.n_levels:
        raise TableError(f"level data have shape {g.shape}; the table has {table.n_levels} levels")
    if not np.allclose(levels.v_gate, table.v_gate):
        raise TableError("level data were taken at gates other than the table's v_gate")
    ok = np.isfinite(g) & (g > 0)
    counts = ok.sum(axis=1)
    if np.any(counts < min_cells):
        l = int(np.argmin(counts))
        raise TableError(f"level {l}: only {int(counts[l])} usable reads; need {min_cells}")
    ln = np.where(ok, np.log(np.where(ok, g, 1.0)), np.nan)
    sigma = np.nanstd(ln, axis=1, ddof=1)
    median = np.exp(np.nanmedian(ln, axis=1))
    lcs = np.asarray(levels.g_lcs, dtype=float)
    lcs = lcs[np.isfinite(lcs) & (lcs > 0)]
    if lcs.size < min_cells:
        raise TableError(f"LCS: only {lcs.size} usable reads; need {min_cells}")
    tr_first = table.transistor_v_th + np.sqrt(2.0 * table.i_c * np.exp(-table.margin * sigma) / table.transistor_k)
    new = dataclasses.replace(
        table, sigma=sigma, g_median=median, n_cells=counts.astype(int),
        v_gate_first=np.minimum(tr_first, table.v_gate),
        lcs_g_median=float(np.exp(np.median(np.log(lcs)))), lcs_sigma=float(np.std(np.log(lcs), ddof=1)),
        lcs_n=int(lcs.size), lcs_v_stop=float(levels.v_stop),
    )
    return new.validate()
