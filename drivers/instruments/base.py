"""What every instrument driver shares: one transport, a safe idle state, a guarded lifetime.

A driver subclasses :class:`Instrument` and says how it reaches its safe idle state
(:meth:`Instrument._safe_idle`: outputs zeroed and off, relays open, lines released).
:meth:`Instrument.close` — also run on context exit, whatever the exception — goes there and
then reads the output state back (:meth:`Instrument._outputs_off`) and reports if it could not
confirm "off", then releases the transport; :meth:`Instrument._guarded` sends a message and, if
sending fails, switches outputs off (:meth:`Instrument._emergency_off`) before re-raising.
"""

from __future__ import annotations

import logging
from types import TracebackType

from drivers.errors import InstrumentError
from drivers.transport import Transport

log = logging.getLogger(__name__)


class Instrument:
    """Base of the instrument drivers.

    Attributes:
        transport: the instrument's :class:`~drivers.transport.Transport`.
        label: name used in log messages.
        close_raises: whether a failure to reach the safe idle state on :meth:`close` is raised
            (sources: the user must know outputs may be on) or only logged (routers).
    """

    label = "instrument"
    close_raises = True

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _safe_idle(self) -> None:
        """Bring the instrument to its safe idle state (subclasses)."""
        raise NotImplementedError

    def _outputs_off(self) -> bool:
        """Read the output state back from the instrument; ``True`` when every output is off
        (subclasses with outputs query it; a router has none to confirm)."""
        return True

    def _emergency_off(self) -> None:
        """Fastest way to outputs-off after a failure; by default the safe idle state."""
        self._safe_idle()

    def switch_off_after_failure(self) -> None:
        """Try :meth:`_emergency_off`; log (never raise) if the link itself has failed."""
        try:
            self._emergency_off()
        except Exception as exc:
            log.error("%s: could not switch outputs off: %s", self.label, exc)

    def _guarded(self, message: str) -> None:
        """Send ``message``; on any failure try to switch the outputs off, then re-raise."""
        try:
            self.transport.write(message)
        except BaseException:
            self.switch_off_after_failure()
            raise

    @property
    def closed(self) -> bool:
        return self.transport._closed

    def close(self) -> None:
        """Safe idle state, read back that the outputs are off, then release the transport.
        Idempotent.

        Raises:
            InstrumentError: (sources) the outputs could not be confirmed off.
        """
        if self.closed:
            return
        try:
            self._safe_idle()
            try:
                confirmed = self._outputs_off()
            except Exception as exc:
                raise InstrumentError(f"{self.label}: could not confirm the outputs are off ({exc})") from exc
            if not confirmed:
                raise InstrumentError(f"{self.label}: outputs still reported on after switching them off")
        except Exception as exc:
            if self.close_raises:
                raise
            log.error("%s: could not reach the safe idle state on close: %s", self.label, exc)
        finally:
            self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
