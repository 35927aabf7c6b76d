"""The language of management command output: the operator's locale, as gettext reads it.

Staff who run `backup`, `restore`, `verify_backup` or `import_odoo` in a shell with a
Spanish locale (LANG=es_PR.UTF-8) read the output in Spanish. CPR_COMMAND_LANGUAGE,
when set, wins over the locale variables.
"""

import os

from django.conf import settings
from django.utils import translation

from cpr_portal.messages import shown

# Checked in this order; the first one set decides. LANGUAGE may list several, such as
# "es_PR:en", as GNU gettext reads it.
LOCALE_VARIABLES = ("CPR_COMMAND_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def operator_language() -> str:
    """Return the code of settings.LANGUAGES that the operator's locale requests."""
    for variable in LOCALE_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        for candidate in value.split(":"):
            # "es_PR.UTF-8@euro" -> "es-pr"; "C" and "POSIX" mean no language.
            code = candidate.split(".")[0].split("@")[0].replace("_", "-").lower()
            if not code or code in ("c", "posix"):
                continue
            try:
                return translation.get_supported_language_variant(code)
            except LookupError:
                continue
        return settings.LANGUAGE_CODE
    return settings.LANGUAGE_CODE


class OperatorLanguageMixin:
    """Give a management command's help and output the operator's language.

    Put it before BaseCommand in the bases. Both entry points are covered: the shell
    (run_from_argv, which also prints --help) and call_command (execute).
    """

    def run_from_argv(self, argv):
        with translation.override(operator_language()):
            return super().run_from_argv(argv)

    def execute(self, *args, **options):
        with translation.override(operator_language()):
            return super().execute(*args, **options)

    def progress_writer(self, verbosity: int):
        """Return a callable that prints a service's progress Message in the operator's
        language, or one that prints nothing when `verbosity` is 0."""
        if verbosity < 1:
            return lambda message: None
        return lambda message: self.stdout.write(shown(message))

    def create_parser(self, prog_name, subcommand, **kwargs):
        # argparse needs a str; a lazy `help` becomes one in the active language.
        self.help = str(self.help)
        return super().create_parser(prog_name, subcommand, **kwargs)
