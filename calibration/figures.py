"""PNG figures of a characterisation, in the style of the papers' characterisation figures.

* :func:`iv_loops` — quasi-static I-V loops at several compliances (SiOx paper Fig. 2b).
* :func:`lrs_distributions` — LRS resistance CDFs per I_C, mean mu_R and sigma_R vs I_C, with
  the fitted model (SiOx paper Fig. 2c-e).
* :func:`hrs_distributions` — HRS resistance CDFs per V_STOP and the median vs |V_STOP| with
  the fitted law (SiOx paper Fig. 2f).
* :func:`level_cdfs` — CDFs of the multi-level states vs I_CC and of the LCS
  (metaplasticity paper Fig. 4b).
* :func:`noise_relaxation` — read-noise distribution and the spread growing with log(time).
* :func:`verify_spread` — spread after program-and-verify beside Milo et al.'s IGVVA line
  (IRPS 2021, Fig. 4; see :mod:`calibration.published`).

matplotlib with the Agg backend; every function writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from calibration.data import CharacterisationData  # noqa: E402
from calibration.fit import FitResult, condition_stats  # noqa: E402
from calibration.published import MILO_RANGE, milo_igvva_sigma  # noqa: E402
from calibration.table import LevelData, LevelTable  # noqa: E402


def _cdf(ax, values: np.ndarray, **kw) -> None:
    v = np.sort(values[np.isfinite(values)])
    if v.size:
        ax.plot(v, np.arange(1, v.size + 1) / v.size, **kw)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def iv_loops(path: Path, data: CharacterisationData) -> Path:
    """Quasi-static I-V loops: state current ``min(G * V, I_C)`` after each staircase step."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    gates = np.asarray(data.iv_v_gate, dtype=float)
    colors = plt.cm.plasma(np.linspace(0.1, 0.8, max(gates.size, 1)))
    vs, vr = np.asarray(data.iv_v_set, float), np.asarray(data.iv_v_reset, float)
    for l, vg in enumerate(gates):
        i_c = float(data.transistor.compliance(vg))
        g_set = np.nanmedian(np.asarray(data.iv_g_set)[l], axis=1)
        g_res = np.nanmedian(np.asarray(data.iv_g_reset)[l], axis=1)
        i_set = np.minimum(g_set * vs, i_c)
        i_res = np.abs(g_res * vr)
        ax.semilogy(vs, i_set, "-", color=colors[l], lw=1.8, label=f"$I_C$ = {i_c * 1e6:.0f} µA")
        ax.semilogy(vr, i_res, "-", color=colors[l], lw=1.8)
    ax.set_xlabel("voltage (V)")
    ax.set_ylabel("|I| = min(G·V, $I_C$) (A)")
    ax.set_title(f"{data.technology}: quasi-static I–V (pulse staircase, median of {np.asarray(data.iv_cells).size} cells)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def _model_r(fit: FitResult, i_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model mean and standard deviation of the LRS resistance (ohm) after one SET at ``i_c``."""
    p = fit.params
    s2 = p.lrs_spread(i_c) ** 2 + p.sigma_d2d**2
    mean = p.v0 / i_c * np.exp(s2)
    return mean, mean * np.sqrt(np.expm1(s2))


def lrs_distributions(path: Path, data: CharacterisationData, fit: FitResult) -> Path:
    """Fig. 2c-e: LRS resistance CDFs per I_C, mu_R and sigma_R vs I_C (data and fit)."""
    stats = condition_stats(data)
    use = ~data.excluded_mask()
    lrs = np.asarray(data.lrs_g)[..., use].reshape(len(data.lrs_i_c), -1)
    i_c = np.asarray(data.lrs_i_c, float)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    colors = plt.cm.viridis(np.linspace(0, 0.9, i_c.size))
    for j in range(i_c.size):
        _cdf(axes[0], 1.0 / lrs[j], color=colors[j], lw=1.4, label=f"{i_c[j] * 1e6:.1f} µA")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("LRS resistance (Ω)")
    axes[0].set_ylabel("cumulative probability")
    axes[0].set_title("(c) LRS distributions vs $I_C$")
    axes[0].legend(fontsize=7, title="$I_C$")
    ic_fine = np.geomspace(i_c.min(), i_c.max(), 100)
    m_fit, s_fit = _model_r(fit, ic_fine)
    axes[1].loglog(i_c, stats["lrs_mu_r"], "o", color="tab:blue", label="measured")
    axes[1].loglog(ic_fine, m_fit, "-", color="tab:red", label=f"fit: V0 = {fit.params.v0:.3f} V")
    axes[1].set_xlabel("$I_C$ (A)")
    axes[1].set_ylabel("mean $μ_R$ (Ω)")
    axes[1].set_title("(d) LRS mean vs $I_C$")
    axes[1].legend(fontsize=8)
    axes[2].loglog(i_c, stats["lrs_sigma_r"], "o", color="tab:blue", label="measured")
    axes[2].loglog(ic_fine, s_fit, "-", color="tab:red",
                   label=f"fit: σ = {fit.params.sigma_lrs_ref:.3f}·({fit.params.i_ref * 1e6:.0f} µA/$I_C$)^{fit.params.sigma_lrs_exp:.2f}"
                         f"\n⊕ d2d {fit.params.sigma_d2d:.3f}")
    axes[2].set_xlabel("$I_C$ (A)")
    axes[2].set_ylabel("standard deviation $σ_R$ (Ω)")
    axes[2].set_title("(e) LRS spread vs $I_C$")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{data.technology}: LRS vs compliance ({int(use.sum())} cells × {np.asarray(data.lrs_g).shape[1]} cycles)")
    return _save(fig, path)


def hrs_distributions(path: Path, data: CharacterisationData, fit: FitResult) -> Path:
    """Fig. 2f: HRS resistance CDFs per V_STOP and the median vs |V_STOP| with the fitted law."""
    use = ~data.excluded_mask()
    vs = np.asarray(data.hrs_v_stop, float)
    hrs = np.asarray(data.hrs_g)[..., use].reshape(vs.size, -1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    colors = plt.cm.magma(np.linspace(0.1, 0.8, vs.size))
    for m in range(vs.size):
        _cdf(axes[0], 1.0 / hrs[m], color=colors[m], lw=1.4, label=f"{vs[m]:.2f} V")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("HRS resistance (Ω)")
    axes[0].set_ylabel("cumulative probability")
    axes[0].set_title("(f) HRS distributions vs $V_{STOP}$")
    axes[0].legend(fontsize=7, title="$V_{STOP}$")
    med = np.exp(np.nanmedian(-np.log(hrs), axis=1))
    vf = np.linspace(np.abs(vs).min(), np.abs(vs).max(), 50)
    axes[1].semilogy(np.abs(vs), med, "o", label="measured median")
    axes[1].semilogy(vf, fit.params.hrs_median(vf), "-", color="tab:red",
                     label=f"fit: {fit.params.r_hrs0:.3g} Ω·exp(|V|/{fit.params.hrs_v:.3f} V)")
    axes[1].set_xlabel("|$V_{STOP}$| (V)")
    axes[1].set_ylabel("median HRS (Ω)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def level_cdfs(path: Path, levels: LevelData, table: LevelTable) -> Path:
    """Fig. 4b: CDFs of the multi-level states after one SET at each level's I_CC, and the LCS."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, table.n_levels))
    for l in range(table.n_levels):
        _cdf(ax, np.asarray(levels.g[l]) * 1e6, color=colors[l], lw=1.5,
             label=f"{table.i_c[l] * 1e6:.0f} µA → {table.g_target[l] * 1e6:.0f} µS")
        ax.axvline(table.g_target[l] * 1e6, color=colors[l], lw=0.6, ls=":")
    _cdf(ax, np.asarray(levels.g_lcs) * 1e6, color="k", lw=1.5, ls="--", label=f"LCS ({levels.v_stop:.2f} V)")
    ax.set_xscale("log")
    ax.set_xlabel("conductance (µS)")
    ax.set_ylabel("cumulative probability")
    ax.set_title(f"{table.technology}: {table.n_levels}-level HCS vs $I_{{CC}}$ and LCS ({np.asarray(levels.g).shape[1]} cells)")
    ax.legend(fontsize=6, ncol=2, loc="upper left", title="$I_{CC}$ → target")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def noise_relaxation(path: Path, data: CharacterisationData, fit: FitResult) -> Path:
    """Read noise (relative deviation from the cell's mean) and relaxation spread vs time."""
    use = ~data.excluded_mask()
    noise = np.asarray(data.noise_g)[:, use]
    rel = noise / noise.mean(axis=0) - 1.0
    relax = np.log(np.asarray(data.relax_g)[:, use])
    t = np.asarray(data.relax_t, float)
    d = relax - relax[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].hist(rel.ravel() * 100, bins=80, color="tab:blue")
    axes[0].set_xlabel("read deviation from the cell's mean (%)")
    axes[0].set_ylabel("reads")
    axes[0].set_title(f"read noise: σ = {fit.params.sigma_read * 100:.2f} % at 1 ms "
                      f"(aperture {data.aperture * 1e3:.1f} ms)")
    p = fit.params
    L = np.log1p(t / p.t_relax0) - np.log1p(t[0] / p.t_relax0)
    axes[1].semilogx(t, d.std(axis=1) * 100, "o", label="measured σ of ln(G/G(t₀))")
    axes[1].semilogx(t, np.sqrt(p.sigma_relax**2 * L**2 + 2 * (p.sigma_read * np.sqrt(1e-3 / data.aperture)) ** 2 * (L > 0)) * 100,
                     "-", color="tab:red", label=f"fit: σ_relax = {p.sigma_relax:.4f} per ln-unit")
    axes[1].semilogx(t, d.mean(axis=1) * 100, "s", color="tab:green", label="measured mean")
    axes[1].semilogx(t, p.drift_relax * L * 100, "-", color="tab:green", label=f"fit: drift = {p.drift_relax:.2e}")
    axes[1].set_xlabel("time after programming (s)")
    axes[1].set_ylabel("change of ln G (%)")
    axes[1].set_title("relaxation")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def verify_spread(path: Path, g_target: np.ndarray, sigma: np.ndarray, n_cells: np.ndarray, label: str,
                  rel_band: float = 0.25) -> Path:
    """Spread (S) per target level (S) after program-and-verify, beside Milo et al.'s line.

    Args:
        path: PNG to write.
        g_target, sigma, n_cells: per level, shape (L,) (e.g. :class:`hil.verify_spread.SpreadResult`).
        label: what was measured (array, settings), for the legend.
        rel_band: the shaded band around the line (relative), the comparison's tolerance.
    """
    g = np.linspace(*MILO_RANGE, 50)
    line = milo_igvva_sigma(g)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(g * 1e6, line * 1e6, "-", color="k", label="Milo et al., IRPS 2021, Fig. 4 (IGVVA fit)")
    ax.fill_between(g * 1e6, (1 - rel_band) * line * 1e6, (1 + rel_band) * line * 1e6, color="k", alpha=0.1,
                    label=f"±{100 * rel_band:.0f} %")
    ax.plot(np.asarray(g_target) * 1e6, np.asarray(sigma) * 1e6, "o", color="tab:red", ms=7, label=label)
    for x, y, n in zip(np.asarray(g_target) * 1e6, np.asarray(sigma) * 1e6, n_cells):
        ax.annotate(f"{int(n)}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)
    ax.set_xlabel("target conductance G (µS)")
    ax.set_ylabel("σ_G after program-and-verify (µS)")
    ax.set_ylim(0, max(8.0, 1.2 * float(np.nanmax(np.asarray(sigma) * 1e6, initial=0))))
    ax.set_title("conductance spread after program-and-verify (cells per level annotated)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def all_figures(stem: Path, data: CharacterisationData, fit: FitResult,
                levels: LevelData | None = None, table: LevelTable | None = None) -> list[Path]:
    """Every figure, as ``<stem>_iv.png``, ``_lrs.png``, ``_hrs.png``, ``_levels.png``, ``_noise.png``."""
    stem = Path(stem)
    out = []
    if np.asarray(data.iv_g_set).size:
        out.append(iv_loops(stem.with_name(stem.name + "_iv.png"), data))
    out.append(lrs_distributions(stem.with_name(stem.name + "_lrs.png"), data, fit))
    out.append(hrs_distributions(stem.with_name(stem.name + "_hrs.png"), data, fit))
    if levels is not None and table is not None:
        out.append(level_cdfs(stem.with_name(stem.name + "_levels.png"), levels, table))
    out.append(noise_relaxation(stem.with_name(stem.name + "_noise.png"), data, fit))
    return out
