"""Turn SIGTERM, SIGHUP and SIGINT into an exception, so that cleanup code runs.

Python's default action for SIGTERM and SIGHUP ends the process at once: `finally` blocks
do not run, so a temporary database or a folder with a full dump would stay behind.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Interrupted(BaseException):  # noqa: N818 (like KeyboardInterrupt, not an error)
    """Raised in the main thread when one of HANDLED_SIGNALS arrives.

    A BaseException, so that `except Exception` blocks let it through to the command.
    """

    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_status(self) -> int:
        """The exit status that shells give a process killed by this signal."""
        return 128 + self.signal_number


@contextlib.contextmanager
def raise_on_signals() -> Iterator[None]:
    """Raise Interrupted on the first handled signal; ignore further ones while cleaning up.

    Signal handlers can only be set in the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signal_number, frame):
        # A second Ctrl-C or TERM must not cut the cleanup short; kill -9 still works.
        for handled in HANDLED_SIGNALS:
            signal.signal(handled, signal.SIG_IGN)
        raise Interrupted(signal_number)

    previous = {handled: signal.signal(handled, handle) for handled in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for handled, handler in previous.items():
            signal.signal(handled, handler)


@contextlib.contextmanager
def command_errors(action: str, cleanup: str) -> Iterator[None]:
    """Run a command's work with signals handled; turn its failures into CommandError.

    `action` starts the message ("Backup", "Restore"...), and `cleanup` describes what was
    undone when a signal stopped the work. A signal gives the exit status that a shell
    reports for it (143 for SIGTERM), after the cleanup has run.
    """
    from django.core.management.base import CommandError
    from django.utils.translation import gettext as _

    from .errors import BackupError

    try:
        with raise_on_signals():
            yield
    except BackupError as error:
        raise CommandError(
            _("%(action)s failed: %(error)s") % {"action": action, "error": error.translated()}
        ) from error
    except Interrupted as stop:
        raise CommandError(
            _("%(action)s stopped by %(signal)s: %(cleanup)s")
            % {"action": action, "signal": stop.signal_name, "cleanup": cleanup},
            returncode=stop.exit_status,
        ) from None
