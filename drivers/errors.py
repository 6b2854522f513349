"""Exceptions shared by every driver, array and simulation."""

from __future__ import annotations


class HilError(Exception):
    """Base class of the package's own errors."""


class SafetyLimitError(HilError, ValueError):
    """A request exceeds a safety limit. Raised before any byte reaches an instrument."""


class InstrumentError(HilError):
    """The instrument reported an error (error queue entry, compliance misuse, bad reply)."""


class ProtocolError(InstrumentError):
    """A reply could not be parsed or failed an integrity check (garbled, truncated)."""


class TransportTimeout(HilError, TimeoutError):
    """No complete reply arrived within the transport's timeout."""
