"""Messages of Django and allauth that our own catalogue translates again.

Nothing imports this module: it exists so that `makemessages` (which reads every .py file
of the project) copies these msgids into locale/es/LC_MESSAGES/django.po, and so that the
drift check keeps them there. LOCALE_PATHS comes before the apps' catalogues, so our
translation wins over the one Django or allauth ships.

Reasons, by group:
- Django 6.1's Spanish leaves some admin and form messages untranslated ("Run",
  "- Select an option -"), so they show in English on Spanish pages.
- Django's and allauth's Spanish use "Introduzca", "Elija" and sometimes tú, and allauth
  writes "doble factor". The portal uses usted, "Escriba" and "Escoja", and
  "autenticación de dos factores".
Only messages on the pages and in the emails that the portal shows are listed.
"""

from django.utils.translation import gettext_noop, ngettext_lazy

DJANGO_FORMS = [
    gettext_noop("- Select an option -"),
    gettext_noop("Enter a valid value."),
    gettext_noop("Enter a valid date."),
    gettext_noop("Enter a valid time."),
    gettext_noop("Enter a valid date/time."),
    gettext_noop("Enter a valid email address."),
    gettext_noop("Enter a valid URL."),
    gettext_noop("Enter a number."),
    gettext_noop("Enter a whole number."),
    gettext_noop("Select a valid choice. %(value)s is not one of the available choices."),
    gettext_noop("Select a valid choice. That choice is not one of the available choices."),
]

DJANGO_ADMIN = [
    gettext_noop("Run"),
    gettext_noop("Logout"),
    gettext_noop("Search %(name)s"),
    gettext_noop("Filter by %(field_name)s"),
    gettext_noop("Pagination %(name)s"),
    gettext_noop("Pagination %(name)s entries"),
    gettext_noop('The app "%s" could not be found.'),
    gettext_noop(
        "Deleting the %(object_name)s “%(escaped_object)s” would require deleting the "
        "following protected related objects:"
    ),
    gettext_noop(
        "Are you sure you want to delete the %(object_name)s “%(escaped_object)s”? All of "
        "the following related items will be deleted:"
    ),
    ngettext_lazy("…and %(count)d more object.", "…and %(count)d more objects.", "count"),
]

ALLAUTH = [
    gettext_noop("Be patient, you are sending too many requests."),
    gettext_noop("Send me a sign-in code"),
    gettext_noop(
        "We've sent a code to %(recipient)s. The code expires shortly, so please enter it soon."
    ),
    gettext_noop("Your sign-in code is listed below. Please enter it in your open browser window."),
    gettext_noop("Two-Factor Authentication"),
    gettext_noop(
        "Your account is protected by two-factor authentication. Please enter an "
        "authenticator code:"
    ),
    gettext_noop(
        "You cannot generate recovery codes without having two-factor authentication enabled."
    ),
    gettext_noop("Enter your password:"),
    gettext_noop(
        "Forgotten your password? Enter your email address below, and we'll send you an email "
        "allowing you to reset it."
    ),
    gettext_noop(
        "You currently do not have any email address set up. You should really add an email "
        "address so you can receive notifications, reset your password, etc."
    ),
    gettext_noop(
        "We have sent an email to you for verification. Follow the link provided to finalize "
        "the signup process. If you do not see the verification email in your main inbox, "
        "check your spam folder. Please contact us if you do not receive the verification "
        "email within a few minutes."
    ),
    gettext_noop(
        '<strong>Note:</strong> you can still <a href="%(email_url)s">change your email '
        "address</a>."
    ),
    gettext_noop("Your email has been changed from %(from_email)s to %(to_email)s."),
    gettext_noop("Email address %(deleted_email)s has been removed from your account."),
    gettext_noop(
        "You're receiving this email because user %(user_display)s has given your email "
        "address to register an account on %(site_domain)s."
    ),
    gettext_noop(
        "A third-party account from %(provider)s has been disconnected from your account."
    ),
]
