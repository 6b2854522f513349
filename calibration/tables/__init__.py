"""Default level tables shipped with the package (``hfo2.h5``, ``siox.h5``).

Each was made by ``hil calibrate`` on the simulated preset of its technology; its ``source``
attribute says so, and that the preset's magnitudes come from the papers' figure trends plus the
cited 1T1R literature (see :mod:`drivers.sim.presets`). Load with
:func:`calibration.table.default_table`.

``hfo2.h5`` was made on the harsh ``hfo2`` preset (Milo et al. spread, device read fluctuation,
Esmanhotto et al. relaxation). The fit has no terms for the device read fluctuation and the
conductance-independent relaxation, so they are absorbed into the fitted ``sigma_read`` and
``sigma_relax`` (about 3x and 6x the preset's instrument-side values); the level targets, gates
and spreads are what the characterisation measured. Regenerate after any change of a preset
(a test checks that a table names its preset's current reference).

Regenerate (from the repository root)::

    hil calibrate --sim hfo2 --shape 32x32 --seed 0 --out calibration/tables/hfo2.h5 \
        --run /tmp/hfo2_char.h5 --no-figures --overwrite
    hil calibrate --sim siox --shape 32x32 --seed 0 --out calibration/tables/siox.h5 \
        --run /tmp/siox_char.h5 --no-figures --overwrite
"""
