"""Learning rules as plain numpy, no I/O.

* :mod:`hil.learning.levels` — quantisation onto (unequally spaced) levels, interval coordinate.
* :mod:`hil.learning.metaplastic` — the QNN meta-function M(W_H) over level intervals with m*
  (D'Agostino et al., arXiv:2306.12142, reconstructed), the plain rule (m* = 0), Laborieux et
  al.'s BNN rule, Adam.
* :mod:`hil.learning.qnn` — ReLU QNN with BatchNorm per task; :mod:`hil.learning.learner` — the
  training step that reports which weights changed level.
* :mod:`hil.learning.bnn` — the software BNN baseline 784-4096-4096-10 (Laborieux et al. 2021).
"""

from hil.learning.learner import MetaplasticLearner, RuleConfig
from hil.learning.levels import level_coordinate, quantize
from hil.learning.metaplastic import Adam, bnn_meta_update, consolidation, meta_function, metaplastic_update
from hil.learning.qnn import QNN

__all__ = [
    "QNN", "Adam", "MetaplasticLearner", "RuleConfig", "bnn_meta_update", "consolidation",
    "level_coordinate", "meta_function", "metaplastic_update", "quantize",
]
