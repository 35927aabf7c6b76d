"""Find text of ours that was never wrapped for translation.

The catalogue checks only see wrapped text, so a sentence typed straight into a template
or passed to messages.success() as a bare string never reaches them. These helpers read
the source instead: templates, with the translated parts and the template syntax taken
out, and Python files, for string literals in the calls that show text to people.
"""

import ast
import re
from pathlib import Path

# Words that are the same in English and Spanish: names of the space, products and
# services, and abbreviations. A template may show them without a translate tag.
PROPER_NAMES = (
    "Code Puerto Rico",
    "CPR Portal",
    "San Juan",
    "Puerto Rico",
    "Hot Desk",
    "ATH Móvil",
    "PostgreSQL",
    "Google",
    "Stripe",
    "Salto",
    "Odoo",
    "Celery",
    "TOTP",
    "iCal",
    "URL",
    "PDF",
    "ID",
)

TEMPLATE_COMMENT = re.compile(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}|\{#.*?#\}", re.S)
BLOCKTRANSLATE = re.compile(
    r"\{%\s*blocktrans(?:late)?\b.*?%\}.*?\{%\s*endblocktrans(?:late)?\s*%\}", re.S
)
# Blocks that fill markup, not text: the admin's <body class="...">.
MARKUP_BLOCK = re.compile(
    r"\{%\s*block\s+(?:bodyclass|extrastyle|extrahead)\s*%\}.*?\{%\s*endblock", re.S
)
TEMPLATE_SYNTAX = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.S)
SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
TAG = re.compile(r"<[^>]*>", re.S)
# Attributes whose value a person reads or hears; other attributes are markup.
READ_ATTRIBUTE = re.compile(
    r"""\s(?:title|alt|placeholder|aria-label|aria-description)\s*=\s*(["'])(.*?)\1""",
    re.S | re.I,
)
ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
WORD = re.compile(r"[^\W\d_]{2,}")


def _strip_names(text: str) -> str:
    for name in PROPER_NAMES:
        text = text.replace(name, " ")
    return text


def _words(text: str) -> list[str]:
    """Return the runs of text in `text` that contain a word of two letters or more."""
    text = _strip_names(ENTITY.sub(" ", text))
    runs = [" ".join(part.split()) for part in text.splitlines()]
    return [run for run in runs if WORD.search(run)]


def unwrapped_template_text(source: str, *, is_html: bool) -> list[str]:
    """Return the visible text of a template that no translate tag covers.

    Translated blocks, template tags, variables, comments, scripts and styles are
    removed first. In HTML, tags are dropped but the attributes that people read
    (title, alt, placeholder, aria-label) are kept as text.
    """
    text = TEMPLATE_COMMENT.sub(" ", source)
    text = BLOCKTRANSLATE.sub(" ", text)
    text = MARKUP_BLOCK.sub(" ", text)
    text = TEMPLATE_SYNTAX.sub(" ", text)
    if not is_html:
        return _words(text)
    text = HTML_COMMENT.sub(" ", SCRIPT_OR_STYLE.sub(" ", text))
    attributes = [value for _quote, value in READ_ATTRIBUTE.findall(text)]
    text = TAG.sub("\n", text)
    return _words(text) + _words("\n".join(attributes))


def template_problems(template_dir: Path) -> list[str]:
    """Return "path: text" for each unwrapped text of every template under `template_dir`."""
    problems = []
    for path in sorted(template_dir.rglob("*")):
        if path.suffix not in {".html", ".txt"} or not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        relative = path.relative_to(template_dir)
        for text in unwrapped_template_text(source, is_html=path.suffix == ".html"):
            problems.append(f"{relative}: {text!r}")
    return problems


# Calls whose first argument, or whose keyword argument, people read.
MESSAGE_FUNCTIONS = {"debug", "info", "success", "warning", "error", "add_message"}
# Http404's and PermissionDenied's messages appear only on DEBUG pages, not on 404.html
# or 403.html, so they stay in English like log lines.
TEXT_CLASSES = {"ValidationError"}
TEXT_KEYWORDS = {
    "verbose_name",
    "verbose_name_plural",
    "label",
    "help_text",
    "empty_label",
    "message",
    "violation_error_message",
}


def _literal(node: ast.AST | None) -> str | None:
    """Return the text of a bare string: a literal, an f-string, "..." % x or "...".format()."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal(node.left)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return _literal(node.func.value)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "{…}" for part in node.values
        )
    return None


def _called_name(call: ast.Call) -> tuple[str, str]:
    """Return the called object's name and its owner (`messages.error` -> error, messages)."""
    function = call.func
    if isinstance(function, ast.Attribute):
        owner = function.value
        owner_name = owner.id if isinstance(owner, ast.Name) else ""
        return function.attr, owner_name
    if isinstance(function, ast.Name):
        return function.id, ""
    return "", ""


def _visible_literals(call: ast.Call) -> list[str]:
    name, owner = _called_name(call)
    found = []
    if owner == "messages" and name in MESSAGE_FUNCTIONS:
        # messages.error(request, "text"); add_message(request, level, "text").
        index = 2 if name == "add_message" else 1
        if len(call.args) > index:
            found.append(_literal(call.args[index]))
    if name in TEXT_CLASSES and call.args:
        found.append(_literal(call.args[0]))
    for keyword in call.keywords:
        # `description` is the admin's label in admin.action() and admin.display(), but
        # data when it fills a model's field, as in Plan.objects.create(description=...).
        is_admin_label = keyword.arg == "description" and name in {"action", "display"}
        if keyword.arg in TEXT_KEYWORDS or is_admin_label:
            found.append(_literal(keyword.value))
    # A model or form field's first positional argument is its verbose name or label.
    if name.endswith("Field") and owner in {"models", "forms"} and call.args:
        found.append(_literal(call.args[0]))
    return [text for text in found if text is not None and WORD.search(_strip_names(text))]


def python_problems(paths: list[Path], root: Path) -> list[str]:
    """Return "path:line: text" for each bare string literal that people would read."""
    problems = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for text in _visible_literals(node):
                    problems.append(f"{path.relative_to(root)}:{node.lineno}: {text!r}")
    return problems
