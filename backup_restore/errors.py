"""Errors of the backup_restore app."""

from cpr_portal.messages import Message


class BackupError(Exception):
    """A backup, restore or verification that could not be done.

    The message gives the reason and the next step. It is an English msgid marked with
    gettext_noop plus its parameters: str(error) is English (for logs), and
    `translated()` is what the commands print in the operator's language.

    Raised before anything is changed whenever the problem can be found up front (a bad
    archive, an archive from newer code, a database that contains data).
    """

    def __init__(self, text: str, /, **params):
        self.message = Message(text, **params)
        super().__init__(str(self.message))

    def translated(self) -> str:
        return self.message.translated()
