"""Experiments: the loops that tie arrays, program-and-verify, learning rules and the run store.

* :mod:`hil.experiments.characterise` — device characterisation (calibration issue).
* :mod:`hil.experiments.metaplastic` — metaplastic sequential-task learning, hardware-in-the-loop
  (configuration in :mod:`hil.experiments.config`, device policy in :mod:`hil.experiments.device`,
  figures in :mod:`hil.experiments.metaplastic_figures`).
"""
