"""Messages that staff read in command output, kept in English until they are shown.

Services raise errors and report progress with a Message. str() gives the English text,
which goes into logs and exception tracebacks; `translated()` gives the active language,
which the management commands print (they activate the operator's language). So a
Spanish operator reads Spanish while the log stays English.

The text must be marked for makemessages where it is written, with gettext_noop:

    Message(gettext_noop("Backup archive %(path)s not found."), path=path)
"""

from django.utils.translation import gettext


class Message:
    """An English message with %(name)s placeholders, translated only when shown.

    A parameter may itself be a Message, or a list or tuple of Messages and strings
    (shown joined by "; "); those parts are shown in the same language as the whole.
    """

    __slots__ = ("params", "text")

    def __init__(self, text: str, /, **params):
        self.text = text
        self.params = params

    def render(self, *, translate: bool) -> str:
        """Return the message in the active language (`translate`) or in English."""
        template = gettext(self.text) if translate else self.text
        if not self.params:
            return template
        values = {name: render_part(value, translate) for name, value in self.params.items()}
        return template % values

    def translated(self) -> str:
        return self.render(translate=True)

    def __str__(self) -> str:
        return self.render(translate=False)

    def __repr__(self) -> str:
        return f"Message({str(self)!r})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.text, self.params) == (other.text, other.params)

    def __hash__(self) -> int:
        return hash(self.text)


class MessageError(Exception):
    """An error whose message staff read: English in str() and logs, translated where shown.

    Raise it with an English msgid marked with gettext_noop and its parameters:
    `raise SomeError(gettext_noop("%(path)s not found."), path=path)`.
    """

    def __init__(self, text: str, /, **params):
        self.message = Message(text, **params)
        super().__init__(str(self.message))

    def translated(self) -> str:
        return self.message.translated()


def render_part(value, translate: bool):
    """Render one parameter: Messages in the requested language, other values unchanged."""
    if isinstance(value, Message):
        return value.render(translate=translate)
    if isinstance(value, list | tuple):
        return "; ".join(str(render_part(item, translate)) for item in value)
    return value


def shown(message) -> str:
    """Return `message` as staff should read it: a Message translated, anything else as str."""
    if isinstance(message, Message):
        return message.translated()
    return str(message)
