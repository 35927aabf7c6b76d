from django.conf import settings


def site(request):
    """Add the contact address that public pages show."""
    return {"contact_email": settings.CPR_CONTACT_EMAIL}
