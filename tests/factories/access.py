"""factory-boy factories for the access domain."""

import factory
from django.utils import timezone

from access.models import AccessKey

from . import MemberFactory


class AccessKeyFactory(factory.django.DjangoModelFactory):
    """A key created directly, active and in sync unless arguments override the fields."""

    class Meta:
        model = AccessKey

    member = factory.SubFactory(MemberFactory)
    number = factory.Sequence(lambda n: f"FOB-{n:06d}")
    kind = AccessKey.Kind.FOB
    status = AccessKey.Status.ACTIVE
    issued_at = factory.LazyFunction(timezone.now)
    wanted_state = AccessKey.Wanted.ACTIVE
    backend_state = AccessKey.Wanted.ACTIVE
    sync_status = AccessKey.Sync.IN_SYNC
