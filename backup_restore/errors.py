"""Errors of the backup_restore app."""

from cpr_portal.messages import MessageError


class BackupError(MessageError):
    """A backup, restore or verification that could not be done.

    The message gives the reason and the next step. str(error) is English (for logs), and
    `translated()` is what the commands print in the operator's language.

    Raised before anything is changed whenever the problem can be found up front (a bad
    archive, an archive from newer code, a database that contains data).
    """
