"""factory-boy factories for the members domain."""

import datetime
import time
from decimal import Decimal

import factory
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import encrypt
from django.contrib.auth import get_user_model
from django.utils import timezone

from members.models import Member, Membership, MembershipApplication, Plan
from members.periods import add_months


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class StaffUserFactory(UserFactory):
    is_staff = True
    is_superuser = True


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    name = factory.Sequence(lambda n: f"Plan {n}")
    slug = factory.Sequence(lambda n: f"plan-{n}")
    monthly_price = Decimal("250.00")
    contract_months = 12
    included_credit = Decimal("150.00")
    is_public = True
    is_active = True


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"member{n}@example.com")
    company = factory.Faker("company")


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MembershipApplication

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"applicant{n}@example.com")
    plan = factory.SubFactory(PlanFactory)
    desired_start_date = factory.LazyFunction(
        lambda: timezone.localdate() + datetime.timedelta(days=7)
    )


class MembershipFactory(factory.django.DjangoModelFactory):
    """A membership created directly, for tests that start from a given state."""

    class Meta:
        model = Membership

    member = factory.SubFactory(MemberFactory)
    plan = factory.SubFactory(PlanFactory)
    monthly_price = factory.SelfAttribute("plan.monthly_price")
    included_credit = factory.SelfAttribute("plan.included_credit")
    contract_months = factory.SelfAttribute("plan.contract_months")
    start_date = factory.LazyFunction(timezone.localdate)
    commitment_end = factory.LazyAttribute(lambda m: add_months(m.start_date, m.contract_months))
    state = Membership.State.PENDING
    state_changed_at = factory.LazyFunction(timezone.now)


# A fixed base32 TOTP secret for tests; codes come from allauth's own HOTP function.
TEST_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def enable_totp(user, secret: str = TEST_TOTP_SECRET) -> Authenticator:
    """Give `user` a TOTP authenticator, as allauth stores one after enrolment."""
    return Authenticator.objects.create(
        user=user, type=Authenticator.Type.TOTP, data={"secret": encrypt(secret)}
    )


def current_totp_code(secret: str = TEST_TOTP_SECRET) -> str:
    """Return the TOTP code for `secret` at this moment."""
    from allauth.mfa import app_settings
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    counter = int(time.time()) // app_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, counter))


class MemberWithUserFactory(MemberFactory):
    """A member with a login, linked the way approval links one (`ensure_member_user`)."""

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def login(member, create, extracted, **kwargs):
        if create:
            from members.services import ensure_member_user

            member.user = ensure_member_user(member=member)
