"""The door access backend interface.

Domain code talks to the lock system only through `AccessBackend`, keyed by our member
id, and receives only the dataclasses below. Every method must be safe to call again
with the same arguments, because reconciliation retries.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class AccessBackendError(Exception):
    """A backend call failed or timed out. The message names the call, without secrets."""


@dataclass(frozen=True)
class BackendUser:
    """The backend's record of one of our members."""

    member_id: int
    has_access: bool
    credentials: list[str] = field(default_factory=list)


class AccessBackend(ABC):
    #: Short name stored on keys ("tracking", "salto").
    name: str

    def configuration_problems(self) -> list[str]:
        """Return a message for each missing or invalid setting; empty when ready."""
        return []

    @abstractmethod
    def ensure_user(self, *, member_id: int, name: str, email: str) -> None:
        """Create the backend's user for our member id unless it exists."""

    @abstractmethod
    def grant_access(self, *, member_id: int) -> None:
        """Put the member in the access groups our integration manages."""

    @abstractmethod
    def remove_access(self, *, member_id: int) -> None:
        """Take the member out of the access groups our integration manages."""

    @abstractmethod
    def assign_credential(self, *, member_id: int, number: str, kind: str) -> None:
        """Assign the key (fob, card or mobile) with `number` to the member."""

    @abstractmethod
    def cancel_credential(self, *, member_id: int, number: str) -> None:
        """Cancel the key with `number`, so it opens nothing any more."""

    @abstractmethod
    def suspend(self, *, member_id: int) -> None:
        """Stop the member's access for now, keeping their keys assigned."""

    @abstractmethod
    def restore(self, *, member_id: int) -> None:
        """Give back access that `suspend` stopped."""

    @abstractmethod
    def list_users(self) -> list[BackendUser]:
        """Return every user of our integration, for reconciliation."""

    @abstractmethod
    def health_check(self) -> bool:
        """Return True when the backend responds."""
