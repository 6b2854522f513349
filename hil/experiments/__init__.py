"""Experiments: the loops that tie arrays, program-and-verify, learning rules and the run store.

* :mod:`hil.experiments.runner` — the one runner every experiment runs on (run store,
  checkpoints, exact resume, progress, arrays closed, figures); :mod:`hil.experiments.registry`
  maps a file's ``experiment`` key to its class; :mod:`hil.experiments.schema` holds the shared
  config-validation helpers.
* :mod:`hil.experiments.characterise` — device characterisation (calibration issue).
* :mod:`hil.experiments.metaplastic` — metaplastic sequential-task learning, hardware-in-the-loop
  (configuration in :mod:`hil.experiments.config`, device policy in :mod:`hil.experiments.device`,
  figures in :mod:`hil.experiments.metaplastic_figures`).
"""
