"""A real SMTP server on 127.0.0.1 for the email tests (aiosmtpd), which records what it accepts.

Tests can stop and start it on the same port (the relay is down), make it reply to the
next DATA commands with given replies (a temporary 451, a permanent 550), reject given
recipients at RCPT (an unknown mailbox), or delay the DATA reply until released (a slow
relay), so that the sending worker can be killed meanwhile. A message whose client
disconnects before the reply is not accepted, as a relay drops a message whose sender
disconnected before the end of the transaction.
"""

import asyncio
import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: email.message.EmailMessage


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """The aiosmtpd handler and its controller; `messages` lists what it accepted."""

    def __init__(self):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[ReceivedMessage] = []
        self.replies: list[str] = []
        # Recipient address -> the reply to its RCPT command, for addresses to reject.
        self.rejected_recipients: dict[str, str] = {}
        self.hold_data = False
        # Seconds to wait after storing a message before replying, as a relay whose
        # reply comes too late: the message counts as accepted even if the client left.
        self.reply_delay = 0.0
        self.data_started = threading.Event()
        self.dropped = 0
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # --- aiosmtpd handler -------------------------------------------------------------

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rejection = self.rejected_recipients.get(address)
        if rejection:
            return rejection
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_started.set()
        try:
            while self.hold_data:
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            # aiosmtpd cancels the handler when the client's connection is lost.
            with self._lock:
                self.dropped += 1
            raise
        with self._lock:
            if self.replies:
                return self.replies.pop(0)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(
                ReceivedMessage(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    message=parsed,
                )
            )
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        return "250 2.0.0 Message accepted"

    # --- control ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self.messages)

    def wait_for_messages(self, count: int, timeout: float) -> list[ReceivedMessage]:
        """Wait until `count` messages arrived or `timeout` seconds passed; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.received()
            if len(received) >= count:
                return received
            time.sleep(0.05)
        return self.received()

    def mailer_settings(self, timeout: int = 5) -> dict:
        """Return a MAILERS setting that sends to this server."""
        return {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": self.host, "port": self.port, "timeout": timeout},
            }
        }
