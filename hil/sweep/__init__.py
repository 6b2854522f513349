"""``hil sweep``: parameter and Monte-Carlo sweeps of experiments and ``hil program`` runs.

* :mod:`hil.sweep.spec` — the sweep file, grid expansion and validation of every trial;
* :mod:`hil.sweep.trial` — one trial as a ``hil`` subprocess; the folder is the state;
* :mod:`hil.sweep.executors` — a local process pool, or Dask (LocalCluster, a scheduler,
  dask-jobqueue on SLURM/PBS/SGE);
* :mod:`hil.sweep.engine` — run the unfinished trials with a progress bar;
* :mod:`hil.sweep.summary` / :mod:`hil.sweep.figures` — mean ± std over seeds, figures.
"""
