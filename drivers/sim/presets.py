"""Technology presets for the two papers' devices: physics parameters plus operating conditions.

Sources are cited per parameter. Our copies of the papers give the *trends* of their
characterisation figures (Fig. 2c-f of the SiOx paper, Fig. 4b of the metaplasticity paper) but
no tabulated numbers; where a magnitude is not in the paper text it is taken from the published
1T1R literature named in the comment, and marked as such.

References:
    [SIOX] Munoz-Martin, Bianchi et al., "A SiOx RRAM-based hardware with spike frequency
        adaptation ...", ../shared/papers/siox-rram-sfa-continual-learning.md, Fig. 2b-f.
    [META] D'Agostino et al., "Synaptic metaplasticity with multi-level memristive devices",
        ../shared/papers/metaplasticity-multilevel-memristors.md, Fig. 4b (8-level HCS vs I_CC,
        16 kbit 1T1R HfO2, 130 nm CMOS).
    [V0] Ielmini, "Modeling the universal set/reset characteristics of bipolar RRAM by
        field- and temperature-driven filament growth", IEEE TED 58(12), 2011: LRS
        R ~ V0 / I_C with V0 ~ 0.2-0.4 V in 1T1R cells (DESIGN.md uses 0.4 V).
    [HFO2-VAR] Grossi et al., IEEE TED 2019 / Nail et al., IEDM 2016 (CEA-Leti HfO2 1T1R):
        relative LRS spread ~10 % near 10-20 uA, falling roughly as I_C^-0.5; HRS log-normal.
    [SIOX-VAR] Bianchi et al., VLSI 2019 / Munoz-Martin et al., IEEE JXCD 5, 2019 (SiOx
        1T1R): wider LRS spread at low I_C than HfO2, HRS growing exponentially with |V_STOP|.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.sim.physics import DeviceParams
from drivers.technology import Technology, Transistor


@dataclass(frozen=True)
class Preset:
    """A simulated technology: its true physics and the operating conditions a user would use."""

    physics: DeviceParams
    technology: Technology


# ---------------------------------------------------------------------------------- HfO2
# 130 nm access transistor: gate 0.7-1.5 V spans I_C ~ 6-110 uA (the I_CC range of [META]
# Fig. 4b's 8 HCS levels lies inside it). Square-law fit is ours, not the paper's.
_HFO2_TRANSISTOR = Transistor(v_th=0.45, k=2.0e-4)

HFO2_PHYSICS = DeviceParams(
    name="hfo2",
    transistor=_HFO2_TRANSISTOR,
    v0=0.4,  # [V0] / DESIGN.md: LRS G ~ I_C / 0.4 V
    sigma_lrs_ref=0.08,  # [HFO2-VAR]: ~8 % relative spread at 20 uA
    i_ref=20e-6,
    sigma_lrs_exp=0.5,  # [HFO2-VAR]: spread ~ I_C^-0.5 ([META] Fig. 4b: low-I_CC CDFs widest)
    v_set_thr=1.2,  # [HFO2-VAR]: SET at 1.2-2 V for 1 us pulses
    v_set_slope=0.1,
    tau_set=1e-6,
    r_hrs0=1.6e3,  # [HFO2-VAR]: HRS ~50 kOhm at |V_STOP| = 1.5 V ...
    hrs_v=0.434,  # ... growing one decade per volt
    sigma_hrs=0.6,  # [HFO2-VAR]: wide log-normal HRS ([META] Fig. 4b, LCS curve)
    v_reset_thr=1.0,
    v_reset_slope=0.1,
    tau_reset=1e-6,
    sigma_kinetics=0.3,
    v_form=3.0,  # [HFO2-VAR]: forming ~3 V
    sigma_form=0.15,
    g_pristine=1e-8,
    sigma_read=0.005,  # read noise ~0.5 % at 1 ms aperture (typical B1500/B2900 at 0.1 V)
    i_noise_floor=1e-10,
    sigma_relax=0.002,  # [HFO2-VAR]: a few % spread growth over hours after programming
    drift_relax=-0.0005,
    t_relax0=1.0,
    sigma_d2d=0.05,
    sigma_d2d_hrs=0.2,
    p_stuck_lrs=0.001,  # defects: 0.3 % of a 16 kbit array, our assumption
    p_stuck_hrs=0.002,
    g_stuck_lrs=600e-6,
    endurance_median=1e6,  # [HFO2-VAR]: HfO2 1T1R endurance 1e5-1e8 cycles
    sigma_endurance=1.0,
    g_mid=12e-6,
)

HFO2_TECHNOLOGY = Technology(
    name="hfo2",
    transistor=_HFO2_TRANSISTOR,
    v_read=0.1,
    v_form=3.6,
    v_gate_form=1.0,
    width_form=10e-6,
    v_set=2.0,
    width_set=1e-6,
    v_stop=-2.0,
    v_gate_reset=2.5,
    width_reset=1e-6,
    v_gate_min=0.70,
    v_gate_max=1.50,
    g_window=(20e-6, 260e-6),
    # [META] Fig. 4b: 8 HCS levels set by I_CC; here I_CC = 10, 20, ... 80 uA -> G = I_CC / V0.
    levels=tuple(i * 10e-6 / 0.4 for i in range(1, 9)),
    reference="[META] Fig. 4b trends; magnitudes from HfO2 1T1R literature (see drivers.sim.presets)",
)

# ---------------------------------------------------------------------------------- SiOx
_SIOX_TRANSISTOR = Transistor(v_th=0.5, k=3.0e-4)

SIOX_PHYSICS = DeviceParams(
    name="siox",
    transistor=_SIOX_TRANSISTOR,
    v0=0.4,  # [V0]; [SIOX] Fig. 2d: mu_R falls as 1/I_C
    sigma_lrs_ref=0.15,  # [SIOX] Fig. 2e: sigma_R grows as I_C falls; ~15 % at 20 uA [SIOX-VAR]
    i_ref=20e-6,
    sigma_lrs_exp=0.7,
    v_set_thr=1.5,  # [SIOX-VAR]: SET ~1.5-2 V
    v_set_slope=0.12,
    tau_set=1e-6,
    r_hrs0=3.7e3,  # [SIOX] Fig. 2f: HRS grows with |V_STOP|; ~200 kOhm at -2 V [SIOX-VAR]
    hrs_v=0.5,
    sigma_hrs=0.8,
    v_reset_thr=1.2,
    v_reset_slope=0.12,
    tau_reset=1e-6,
    sigma_kinetics=0.4,
    v_form=4.0,  # [SIOX-VAR]: SiOx forming ~4 V
    sigma_form=0.2,
    g_pristine=1e-9,
    sigma_read=0.01,
    i_noise_floor=1e-10,
    sigma_relax=0.004,
    drift_relax=-0.001,
    t_relax0=1.0,
    sigma_d2d=0.08,
    sigma_d2d_hrs=0.3,
    p_stuck_lrs=0.002,
    p_stuck_hrs=0.003,
    g_stuck_lrs=800e-6,
    endurance_median=1e5,  # [SIOX-VAR]: SiOx endurance ~1e5 cycles
    sigma_endurance=1.0,
    g_mid=10e-6,
)

SIOX_TECHNOLOGY = Technology(
    name="siox",
    transistor=_SIOX_TRANSISTOR,
    v_read=0.1,
    v_form=4.8,
    v_gate_form=1.0,
    width_form=10e-6,
    v_set=2.2,
    width_set=1e-6,
    v_stop=-2.5,
    v_gate_reset=2.5,
    width_reset=1e-6,
    v_gate_min=0.75,
    v_gate_max=1.40,
    g_window=(25e-6, 280e-6),
    levels=(),  # 4-bit filter weights: 16 levels spread over the window ([SIOX] Fig. 3c)
    reference="[SIOX] Fig. 2b-f trends; magnitudes from SiOx 1T1R literature (see drivers.sim.presets)",
)

PRESETS: dict[str, Preset] = {
    "hfo2": Preset(HFO2_PHYSICS, HFO2_TECHNOLOGY),
    "siox": Preset(SIOX_PHYSICS, SIOX_TECHNOLOGY),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``"hfo2"`` or ``"siox"``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown technology {name!r}; choose one of {sorted(PRESETS)}") from None
