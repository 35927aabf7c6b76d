"""Domain notifications other apps subscribe to, so members never imports them.

`membership_changed` is sent after the transaction that changed a membership's state
commits, with `membership_id`. The access app recomputes the member's keys from it.
"""

from django.dispatch import Signal

membership_changed = Signal()
