"""The package version, in one place (pyproject.toml reads it: ``[tool.setuptools.dynamic]``).

A plain string, so that ``hil`` starts without ``importlib.metadata`` (about 50 ms of every
``hil run``, which a sweep pays once per trial).
"""

__version__ = "0.1.0"
