"""Simulations: the 1T1R device physics, simulated instruments and a simulated PYNQ device."""
