"""The default access backend: keys are tracked in the portal and no lock system is called.

Reconciliation with this backend marks every key in sync, so the portal's records are the
only place a key's state lives. Use it where the doors are managed by hand.
"""

import logging

from .base import AccessBackend, BackendUser

logger = logging.getLogger(__name__)


class TrackingBackend(AccessBackend):
    name = "tracking"

    def ensure_user(self, *, member_id: int, name: str, email: str) -> None:
        logger.debug("Tracking backend: ensure user for member %s", member_id)

    def grant_access(self, *, member_id: int) -> None:
        logger.debug("Tracking backend: grant access to member %s", member_id)

    def remove_access(self, *, member_id: int) -> None:
        logger.debug("Tracking backend: remove access of member %s", member_id)

    def assign_credential(self, *, member_id: int, number: str, kind: str) -> None:
        logger.debug("Tracking backend: assign %s credential to member %s", kind, member_id)

    def cancel_credential(self, *, member_id: int, number: str) -> None:
        logger.debug("Tracking backend: cancel a credential of member %s", member_id)

    def suspend(self, *, member_id: int) -> None:
        logger.debug("Tracking backend: suspend member %s", member_id)

    def restore(self, *, member_id: int) -> None:
        logger.debug("Tracking backend: restore member %s", member_id)

    def list_users(self) -> list[BackendUser]:
        return []

    def health_check(self) -> bool:
        return True
