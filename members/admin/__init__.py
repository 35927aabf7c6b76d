"""Staff back office for plans, applications, members and memberships.

No page here changes an application's status or a membership's state itself: the
actions and the buttons call `members.services`, pass the staff user as the actor, and
report the outcome of every selected row as its own message. Importing this package
registers every model admin with the default admin site.
"""

from .applications import MembershipApplicationAdmin
from .members import MemberAdmin
from .memberships import MembershipAdmin
from .plans import PlanAdmin

__all__ = ["MemberAdmin", "MembershipAdmin", "MembershipApplicationAdmin", "PlanAdmin"]
