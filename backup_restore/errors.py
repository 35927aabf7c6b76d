"""Errors of the backup_restore app."""


class BackupError(Exception):
    """A backup, restore or verification that could not be done.

    The message gives the reason and the next step.

    Raised before anything is changed whenever the problem can be found up front (a bad
    archive, an archive from newer code, a database that contains data).

    NOTE: the messages of BackupError and the progress lines of the services are English
    only. The commands translate their own framing ("Backup failed: ...") and summaries.
    """
