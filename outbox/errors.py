class OutboxError(Exception):
    """An email cannot be queued or sent again. The message names the value and the fix."""
