"""Input cleaning shared by the request models: names, filenames, content types."""

from __future__ import annotations

import re
import unicodedata

_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/"
                           r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


def clean_text(value: str, what: str, max_length: int) -> str:
    """NFC-normalise and strip ``value``; refuse control characters, emptiness, excess length
    (ValueError naming ``what``). Unicode letters, emoji and SQL metacharacters are fine."""
    value = unicodedata.normalize("NFC", value).strip()
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError(f"{what} must not contain control characters")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{what} must have at most {max_length} characters")
    return value


def clean_filename(value: str | None, default: str = "upload") -> str:
    """The last path component of a client-supplied filename, cleaned, at most 255 chars."""
    name = (value or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name)
                   if unicodedata.category(ch) not in ("Cc", "Cs")).strip()
    if name in ("", ".", ".."):
        return default
    return name[:255]


def clean_content_type(value: str | None) -> str:
    """A ``type/subtype`` media type (parameters dropped), else application/octet-stream."""
    media = (value or "").split(";", 1)[0].strip().lower()
    return media if _CONTENT_TYPE.match(media) else "application/octet-stream"


# Served with their own type: formats a browser renders without running anything. Any other
# (text/html, image/svg+xml, text/xml, JavaScript …) is served as application/octet-stream.
SAFE_SERVED_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
    "application/pdf", "text/plain", "text/csv", "application/json", "application/zip",
    "audio/mpeg", "audio/ogg", "video/mp4", "video/webm",
})


def served_content_type(recorded: str) -> str:
    """The content type an upload is served with: its recorded type when on the allowlist,
    else application/octet-stream (an uploaded page must never run in our origin)."""
    return recorded if recorded in SAFE_SERVED_TYPES else "application/octet-stream"


def check_json_depth(value: object, what: str, max_depth: int) -> None:
    """ValueError when a JSON document nests deeper than ``max_depth`` (iterative walk)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise ValueError(f"{what} nests deeper than {max_depth} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
