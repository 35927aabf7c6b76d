"""Errors of the backup_restore app."""


class BackupError(Exception):
    """A backup, restore or verification could not be done. The message says why and what to do.

    Raised before anything is changed whenever the problem can be found up front (a bad
    archive, an archive from newer code, a database that holds data).
    """
