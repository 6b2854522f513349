"""Instruments, arrays, the PYNQ IP, and their physics-backed simulations.

The bottom layer: it imports neither :mod:`hil` nor :mod:`calibration`.
"""
