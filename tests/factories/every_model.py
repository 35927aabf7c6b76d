"""Rows in every table, and media files, for tests that must show nothing is lost.

`fill_every_model` writes at least one row to each model's table, with the awkward
values a round trip can break: non-ASCII text, quotes, empty strings, NULLs, JSON,
decimals and time zones. `models_without_rows` lists the models a test run left empty,
so a model added later without a row here makes those tests fail.
"""

import datetime
from decimal import Decimal
from pathlib import Path

from allauth.account.models import EmailAddress, EmailConfirmation
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.apps import apps
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone

from access.models import AccessEvent, AccessKey
from backup_restore.models import Installation
from billing.models import (
    CreditEntry,
    GatewayCustomer,
    GatewaySubscription,
    Invoice,
    InvoiceItem,
    Payment,
)
from bookings.models import Booking, CalendarFeed, Room, RoomHours
from members.models import LanguagePreference, Member, Membership, MembershipEvent
from outbox.models import OutboxEmail

from . import (
    ApplicationFactory,
    MemberFactory,
    MembershipFactory,
    PlanFactory,
    StaffUserFactory,
    UserFactory,
    enable_totp,
)
from .access import AccessKeyFactory
from .billing import CreditLotFactory, InvoiceFactory, PaymentFactory, WebhookEventFactory

# Files with nested folders, a non-ASCII name, binary bytes and an empty file.
MEDIA_FILES = {
    "members/photos/ana-núñez.png": bytes(range(256)) * 64,
    "members/documents/contract 2026.pdf": b"%PDF-1.7\n" + b"\x00\xff" * 2048,
    "notes/empty.txt": b"",
    "readme.txt": "Código Puerto Rico — copia de seguridad\n".encode(),
}


def fill_every_model() -> None:
    """Create at least one row in every table of every installed model."""
    staff = StaffUserFactory(first_name="José", last_name="O'Neill")
    enable_totp(staff)
    group = Group.objects.create(name="Front desk")
    group.permissions.add(*Permission.objects.filter(codename__startswith="view_")[:3])
    staff.groups.add(group)
    staff.user_permissions.add(Permission.objects.get(codename="change_member"))
    LanguagePreference.objects.create(user=staff, language="es")

    plan = PlanFactory(name="Dedicated Desk", description="Escritorio fijo; café incluido.")
    member = MemberFactory(
        first_name="Ana",
        last_name="Núñez",
        bio='Line one\nline "two"\ttab',
        phone="",
        member_since=datetime.date(2024, 2, 29),
        language="es",
    )
    login = UserFactory(username="ana", email=member.email)
    member.user = login
    member.save(update_fields=["user"])
    address = EmailAddress.objects.create(
        user=login, email=login.email, verified=True, primary=True
    )
    EmailConfirmation.objects.create(email_address=address, key="confirmation-key-1")
    app = SocialApp.objects.create(provider="google", name="Google", client_id="client-id")
    social = SocialAccount.objects.create(
        user=login, provider="google", uid="10769150350006150715113082367", extra_data={"hd": "ñ"}
    )
    SocialToken.objects.create(app=app, account=social, token="token-value")

    application = ApplicationFactory(plan=plan, email=member.email, message="¿Hay parking?")
    membership = MembershipFactory(
        member=member,
        plan=plan,
        application=application,
        state=Membership.State.ACTIVE,
        start_date=datetime.date(2025, 1, 31),
    )
    MembershipEvent.objects.create(
        membership=membership,
        from_state=Membership.State.PENDING,
        to_state=Membership.State.ACTIVE,
        actor=staff,
        reason="Primer pago recibido",
    )
    MembershipFactory(member=MemberFactory(), plan=plan, state=Membership.State.CANCELLED)

    GatewayCustomer.objects.create(member=member, gateway="stripe", reference="cus_123")
    GatewaySubscription.objects.create(
        membership=membership, gateway="stripe", reference="sub_123", cancel_at=None
    )
    invoice = InvoiceFactory(membership=membership, status=Invoice.Status.PAID)
    PaymentFactory(
        invoice=invoice,
        method=Payment.Method.ATH_MOVIL,
        amount=Decimal("250.00"),
        recorded_by=staff,
    )
    WebhookEventFactory(payload={"id": "evt_1", "data": {"amount": 25000, "note": "ñ"}})
    lot = CreditLotFactory(member=member, amount=Decimal("150.00"))
    CreditEntry.objects.create(
        member=member,
        kind=CreditEntry.Kind.SPEND,
        amount=Decimal("-12.50"),
        lot=lot,
        reason="Sala de reuniones",
        created_by=staff,
    )

    room = Room.objects.create(
        name="Sala Morro «grande»",
        capacity=8,
        hourly_rate=Decimal("25.00"),
        photo="rooms/sala-morro.jpg",
        description="Pizarra y pantalla; 'comillas'.",
    )
    RoomHours.objects.create(
        room=room, weekday=0, opens_at=datetime.time(8), closes_at=datetime.time(18, 30)
    )
    booking = Booking.objects.create(
        member=member,
        membership=membership,
        room=room,
        start=datetime.datetime(2025, 3, 3, 14, 0, tzinfo=datetime.UTC),
        end=datetime.datetime(2025, 3, 3, 16, 30, tzinfo=datetime.UTC),
        status=Booking.Status.CANCELLED,
        price=Decimal("62.50"),
        credit_used=Decimal("12.50"),
        overage=Decimal("50.00"),
        booked_by=staff,
        cancelled_at=timezone.now(),
        cancelled_by=staff,
        cancel_reason="Avería del aire acondicionado",
    )
    InvoiceItem.objects.create(
        membership=membership,
        amount=Decimal("50.00"),
        description="Sala Morro, 3 de marzo",
        reference=booking.ledger_reference,
        status=InvoiceItem.Status.INVOICED,
        invoice=invoice,
        gateway="stripe",
        gateway_reference="ii_123",
    )
    CalendarFeed.objects.create(member=member)

    key = AccessKeyFactory(member=member, kind=AccessKey.Kind.CARD)
    AccessEvent.objects.create(
        key=key,
        cause=AccessEvent.Cause.STAFF,
        actor=staff,
        to_status=AccessKey.Status.ACTIVE,
        reason="Issued at the front desk",
    )

    OutboxEmail.objects.create(
        recipient=member.email,
        template="payment_received",
        context={"member_name": "Ana Núñez", "amount": "250.00", "note": 'comillas "dobles"'},
        language="es",
        status=OutboxEmail.Status.SENT,
        attempts=1,
        sent_at=timezone.now(),
        message_id="<outbox-1@portal.code.pr>",
        dedupe_key="payment_received:payment:1",
    )

    LogEntry.objects.log_actions(
        user_id=staff.pk,
        queryset=Member.objects.filter(pk=member.pk),
        action_flag=ADDITION,
        change_message="Added.",
        single_object=True,
    )
    session = SessionStore()
    session["member_id"] = member.pk
    session.set_expiry(timezone.now() + datetime.timedelta(days=14))
    session.create()
    # ContentType and Permission rows come from migrate; touch one so a change shows.
    ContentType.objects.get_for_model(Member)
    # Made by the first backup; made here so that a round trip is shown to keep it.
    Installation.objects.get_or_create(pk=1, defaults={"token": "0123456789abcdef" * 2})


def models_without_rows() -> list[str]:
    """Return the labels of installed models whose table is empty."""
    return [
        model._meta.label
        for model in apps.get_models(include_auto_created=True)
        if not model._default_manager.exists()
    ]


def write_media_files(media_root: Path) -> dict[str, bytes]:
    """Write MEDIA_FILES under `media_root` and return them by relative path."""
    for name, content in MEDIA_FILES.items():
        path = media_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return dict(MEDIA_FILES)


def read_media_files(media_root: Path) -> dict[str, bytes]:
    """Return every file under `media_root` by relative path."""
    return {
        path.relative_to(media_root).as_posix(): path.read_bytes()
        for path in sorted(media_root.rglob("*"))
        if path.is_file()
    }
