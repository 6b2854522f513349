"""Instrument drivers, one module per instrument family.

- :mod:`drivers.instruments.base`: the safe-idle lifetime every driver shares (outputs off on
  close, on context exit and after a failed write).
- :mod:`drivers.instruments.b2900`: Keysight B2900 series SMU (SCPI).
- :mod:`drivers.instruments.b1500`: Keysight B1500A semiconductor analyser (FLEX).
- :mod:`drivers.instruments.switch_matrix`: switch matrix (B2200A / E5250A class, SCPI route).
- :mod:`drivers.instruments.array_board`: the serial decoder and gate-DAC array board.

A new instrument goes here as a module of its own; it talks only through
:class:`drivers.transport.Transport` and imports nothing from ``hil`` or ``calibration``.
"""
