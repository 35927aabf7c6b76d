from email.utils import parseaddr

from django.conf import settings
from django.core import checks
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.template import TemplateDoesNotExist
from django.template.loader import get_template


def _is_address(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


@checks.register()
def check_email_settings(app_configs, **kwargs):
    """Fail start-up when the sender, the staff recipients or the retry limits are unusable."""
    errors = []
    sender = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    if not _is_address(sender):
        errors.append(
            checks.Error(
                f"DEFAULT_FROM_EMAIL={settings.DEFAULT_FROM_EMAIL!r} contains no valid address.",
                hint="Set it to an address such as 'Code Puerto Rico <info@code.pr>'.",
                id="outbox.E001",
            )
        )
    for address in settings.CPR_STAFF_NOTIFY_EMAILS:
        if not _is_address(address):
            errors.append(
                checks.Error(
                    f"CPR_STAFF_NOTIFY_EMAILS contains {address!r}, which is not an email address.",
                    hint="List plain addresses separated by commas.",
                    id="outbox.E002",
                )
            )
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    if visibility < settings.CPR_OUTBOX_MAX_COUNTDOWN_SECONDS * 2:
        errors.append(
            checks.Error(
                f"CPR_OUTBOX_MAX_COUNTDOWN_SECONDS={settings.CPR_OUTBOX_MAX_COUNTDOWN_SECONDS} "
                f"is more than half the broker's visibility timeout ({visibility} s), so a "
                "retry waiting in the broker could be delivered twice.",
                hint="Lower the countdown or raise broker visibility_timeout.",
                id="outbox.E003",
            )
        )
    return errors


@checks.register(checks.Tags.templates)
def check_email_templates(app_configs, **kwargs):
    """Fail start-up when an email of the catalog lacks its subject or body template."""
    from .catalog import TEMPLATES

    errors = []
    for spec in TEMPLATES.values():
        for path in spec.paths():
            try:
                get_template(path)
            except TemplateDoesNotExist:
                errors.append(
                    checks.Error(
                        f"The {spec.name} email has no template {path}.",
                        hint="Add the file under templates/.",
                        id="outbox.E004",
                    )
                )
    return errors
