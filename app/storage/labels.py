"""The one Unicode policy for character names (labels), and their folder names on export.

A label is any text in any script, as typed, with these rules (README, "Labels"):
- valid UTF-8 only: the form decoder turns invalid bytes into U+FFFD, so U+FFFD is refused;
- normalised to NFC, then spaces (Unicode Zs, e.g. U+3000) trimmed at both ends;
- 1 to MAX_CHARS code points;
- nothing invisible or that breaks a line: no control (Cc), format (Cf), surrogate, private-use,
  unassigned or noncharacter code point, no line or paragraph separator (Zl, Zp), no default-
  ignorable code point and no blank "letter" (U+3164 HANGUL FILLER, U+2800 BRAILLE BLANK ...),
  except where a script or an emoji needs one:
  - U+200D ZERO WIDTH JOINER between two emoji (family, profession, flag sequences), or after
    a virama (Indic conjuncts);
  - U+200C ZERO WIDTH NON-JOINER between two letters or marks (Persian, Indic);
  - variation selectors (U+FE00..FE0F, U+E0100..E01EF, Mongolian U+180B..180F) right after a
    visible character (emoji presentation, ideographic variants);
  - tag characters U+E0020..E007F inside a subdivision flag: after U+1F3F4, ended by U+E007F;
- at most MAX_MARKS combining marks on one character (no "Zalgo" text).
Code points this Python's Unicode tables do not know yet are unassigned, and refused, except in
the emoji blocks (U+1F000..1FAFF), where they count as emoji: new emoji arrive every year.
"""
import hashlib
import re
import unicodedata

from app.i18n import _

MAX_CHARS = 100
MAX_MARKS = 8

ZWNJ, ZWJ = "\u200c", "\u200d"
BLACK_FLAG, CANCEL_TAG = "\U0001F3F4", "\U000E007F"
# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties) outside category Cf, plus blank
# characters that look like nothing; categories Cf/Cc/Cs/Co/Cn/Zl/Zp are refused by category.
INVISIBLE = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0, *range(0x1D173, 0x1D17B)}
VARIATION_SELECTORS = {*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0), *range(0x180B, 0x1810)}
TAGS = range(0xE0020, 0xE007F)
# Emoji modifiers (skin tones) and the regional indicators are So/Sk; so are most emoji.
EMOJI_CATEGORIES = {"So", "Sk"}
VIRAMA = 9  # canonical combining class of a virama
EMOJI_BLOCKS = range(0x1F000, 0x1FB00)


class LabelError(ValueError):
    """A label that cannot be accepted; the message (app/i18n.py Message) says why."""


# The fields a label arrives in, as clients read them (the API's own field name in brackets).
FIELDS = {"label": _("The name (label)"), "name": _("The name (name)"),
          "predicted label": _("The predicted name (predicted)")}


def _category(ch):
    """Unicode category, with code points of the emoji blocks unknown to these tables taken as So."""
    category = unicodedata.category(ch)
    return "So" if category == "Cn" and ord(ch) in EMOJI_BLOCKS else category


def _is_emoji(ch):
    return ch is not None and (_category(ch) in EMOJI_CATEGORIES or ord(ch) in VARIATION_SELECTORS)


def _allowed_invisible(text, i):
    """True if the invisible character text[i] is one of the exceptions of the policy."""
    ch = text[i]
    prev = text[i - 1] if i > 0 else None
    nxt = text[i + 1] if i + 1 < len(text) else None
    if ch == ZWJ:
        return (_is_emoji(prev) and nxt is not None and _category(nxt) in EMOJI_CATEGORIES) or \
            (prev is not None and unicodedata.combining(prev) == VIRAMA)
    if ch == ZWNJ:
        return prev is not None and nxt is not None and \
            unicodedata.category(prev)[0] in "LM" and unicodedata.category(nxt)[0] in "LM"
    if ord(ch) in VARIATION_SELECTORS:
        return prev is not None and _visible(prev)
    if ord(ch) in TAGS or ch == CANCEL_TAG:
        # Walk back over the tag run to the flag it belongs to, and on to its cancel tag.
        start = i
        while start > 0 and ord(text[start - 1]) in TAGS:
            start -= 1
        end = i
        while end < len(text) and ord(text[end]) in TAGS:
            end += 1
        return start > 0 and text[start - 1] == BLACK_FLAG and end < len(text) and text[end] == CANCEL_TAG \
            and (ch != CANCEL_TAG or end > start)
    return False


def _visible(ch):
    category = _category(ch)
    return category[0] in "LNPS" and ord(ch) not in INVISIBLE


def _refused(ch):
    category = _category(ch)
    return category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or ord(ch) in INVISIBLE \
        or ord(ch) in VARIATION_SELECTORS or ch == "\ufffd"


def clean_label(text, field="label", allow_empty=False):
    """The label as stored: NFC, spaces trimmed; LabelError if it breaks the policy above."""
    what = FIELDS.get(field, field)
    if not isinstance(text, str):
        raise LabelError(_("%(field)s must be text.", field=what))
    if "\ufffd" in text:
        raise LabelError(_("%(field)s is not valid UTF-8 (or holds U+FFFD).", field=what))
    label = unicodedata.normalize("NFC", text)
    start, end = 0, len(label)
    while start < end and unicodedata.category(label[start]) == "Zs":
        start += 1
    while end > start and unicodedata.category(label[end - 1]) == "Zs":
        end -= 1
    label = label[start:end]
    if not label:
        if allow_empty:
            return ""
        raise LabelError(_("%(field)s is empty.", field=what))
    if len(label) > MAX_CHARS:
        raise LabelError(_("%(field)s is longer than %(limit)d characters.", field=what, limit=MAX_CHARS))
    marks = 0
    for i, ch in enumerate(label):
        if _refused(ch) and not _allowed_invisible(label, i):
            name = unicodedata.name(ch, "")
            raise LabelError(_("%(field)s contains an invisible, control or line-breaking character "
                               "(%(character)s).", field=what,
                               character=f"U+{ord(ch):04X}{' ' + name if name else ''}"))
        marks = marks + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        if marks > MAX_MARKS:
            raise LabelError(_("%(field)s stacks more than %(limit)d combining marks on one character.",
                                 field=what, limit=MAX_MARKS))
    if not any(_visible(ch) for ch in label):
        raise LabelError(_("%(field)s has no visible character.", field=what))
    return label


# ---------- folder names on export ----------
# Escaped in folder names: what common file systems refuse, what shells and Windows treat
# specially, and "%" itself, which makes the escaping reversible (so no two labels share a folder).
ESCAPED = set('/\\:*?"<>|%') | {chr(c) for c in range(0x20)} | {"\x7f"}
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}
NAME_BYTES = 240  # under NAME_MAX (255 bytes) on Linux file systems
HASHED = "%~"      # never produced by escaping ("%" always becomes "%25")


def name_key(name):
    """The key under which two spellings are one character: NFKC, case-folded ("Lucy", "lucy", "ＬＵＣＹ")."""
    return unicodedata.normalize("NFKC", name).casefold()


def spelling_in(name, known):
    """The spelling of `name` among `known` names equal to it under name_key, or `name` itself."""
    key = name_key(name)
    return next((k for k in known if name_key(k) == key), name)


def _escape(ch):
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


def folder_name(label):
    """A folder name for `label`: its letters kept (any script), never '.', '..' or a path, and
    different labels never share one (".", ".." and "..." give "%2E", "%2E%2E", "%2E.%2E")."""
    chars = [_escape(ch) if ch in ESCAPED or not ch.isprintable() else ch for ch in label]
    # Leading and trailing dots and spaces vanish or hide on some systems: escape them.
    for i in (0, len(chars) - 1) if chars else ():
        if chars[i] in (".", " "):
            chars[i] = _escape(chars[i])
    name = "".join(chars)
    if name.split(".")[0].upper() in WINDOWS_RESERVED:
        name = _escape(name[0]) + name[1:]
    if not name:
        return "%"  # the empty label (no label is empty, but an old record might be)
    if len(name.encode("utf-8")) > NAME_BYTES:
        digest = hashlib.sha256(label.encode("utf-8")).hexdigest()[:16]
        keep = name.encode("utf-8")[:NAME_BYTES - len(HASHED) - len(digest)].decode("utf-8", "ignore")
        name = re.sub(r"%[0-9A-F]?$", "", keep) + HASHED + digest  # never cut an escape in half
    return name


def label_from_folder(name):
    """The label a folder_name() came from (for names cut short with a hash: the part kept)."""
    if name == "%":
        return ""
    name = name.split(HASHED, 1)[0]
    return re.sub(r"(?:%[0-9A-F]{2})+", lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode(
        "utf-8", "replace"), name)
