"""Names and label values that always satisfy Kubernetes' rules, however long or odd the input.

Kubernetes names are DNS labels (63 characters, lower-case alphanumerics and '-'), label values are
at most 63 characters of `[A-Za-z0-9._-]` starting and ending alphanumeric. A git branch such as
`feature/Ünïcode_work` or a 200-character workshop name must still map to a valid, stable and
distinct value, so anything cut or changed is suffixed with a short hash of the original.
"""

from __future__ import annotations

import hashlib
import re

MAX = 63
_HASH_LEN = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def dns_label(text: str, max_length: int = MAX) -> str:
    """A DNS-1123 label derived from `text`; unchanged when `text` already is one."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if cleaned == text and 0 < len(cleaned) <= max_length:
        return cleaned
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if max_length <= _HASH_LEN + 1:
        return _digest(text)[:max_length]
    room = max_length - _HASH_LEN - 1
    head = cleaned[:room].strip("-")
    return f"{head}-{_digest(text)}" if head else f"x-{_digest(text)}"


def child_name(parent: str, suffix: str, max_length: int = MAX) -> str:
    """`<parent>-<suffix>`, shortened with a hash of the parent when too long for a DNS label."""
    wanted = f"{parent}-{suffix}"
    if len(wanted) <= max_length and dns_label(wanted, max_length) == wanted:
        return wanted
    room = max_length - len(suffix) - 1
    if room < _HASH_LEN + 2:  # no room left to keep the parent recognisable: hash the whole
        return dns_label(wanted, max_length)
    return f"{dns_label(parent, room)}-{suffix}"


def label_value(text: str) -> str:
    """A valid label value derived from `text`; unchanged when `text` already is one."""
    if len(text) <= MAX and re.fullmatch(r"([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?", text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    room = MAX - _HASH_LEN - 1
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned[:room])
    return f"{head}-{_digest(text)}" if head else _digest(text)
