"""The built-in scanner, the embedded stand-in for SentinelNet: PII patterns in metadata and text, a perceptual hash
of images against a blocklist, and blocked terms. Its verdicts reach the platform through the webhook code path."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PASS, QUARANTINE, BLOCK = "pass", "quarantine", "block"
VERDICTS = (PASS, QUARANTINE, BLOCK)
CATEGORIES = ("pii", "copyright", "defamation", "policy")
# Hamming distance at or under which two 64-bit difference hashes are the same picture (resized, recompressed).
SAME_IMAGE_BITS = 10
TEXT_LIMIT = 1024 * 1024

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()-]{8,16}\d(?!\w)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


@dataclass(frozen=True)
class Verdict:
    verdict: str
    categories: tuple[str, ...] = ()
    evidence: tuple[Mapping[str, str], ...] = field(default_factory=tuple)


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    iban = text.replace(" ", "")
    moved = iban[4:] + iban[:4]
    return 15 <= len(iban) <= 34 and int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _mask(value: str) -> str:
    return value[:2] + "…" + value[-2:] if len(value) > 4 else "…"


def pii_findings(text: str, where: str) -> list[dict[str, str]]:
    """PII in `text`, masked: the evidence must not repeat what it flags."""
    found = [{"kind": "email", "where": where, "match": _mask(m)} for m in _EMAIL.findall(text)]
    for m in _IBAN.findall(text):
        if _iban_valid(m):
            found.append({"kind": "iban", "where": where, "match": _mask(m)})
    for m in _CARD.findall(text):
        digits = re.sub(r"\D", "", m)
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.append({"kind": "card_number", "where": where, "match": _mask(digits)})
    # Digit runs that are account or card numbers (valid or not) are not phone numbers.
    rest = _CARD.sub(" ", _IBAN.sub(" ", text))
    for m in _PHONE.findall(rest):
        digits = re.sub(r"\D", "", m)
        if 10 <= len(digits) <= 15 and not _looks_like_date(m):
            found.append({"kind": "phone", "where": where, "match": _mask(digits)})
    return found


def _looks_like_date(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()))


def difference_hash(image_bytes: bytes) -> int:
    """A 64-bit dHash: each bit says whether a pixel of a 9×8 greyscale thumbnail is brighter than its right
    neighbour, so resizing and recompression keep it within a few bits."""
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as image:
        pixels = list(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS).getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return bits


def parse_blocklist(text: str) -> list[int]:
    """Hex dHashes, one per line; `#` starts a comment."""
    hashes = []
    for line in text.splitlines():
        value = line.split("#", 1)[0].strip()
        if value:
            hashes.append(int(value, 16))
    return hashes


def scan(
    metadata: Mapping[str, str],
    content: bytes,
    content_type: str,
    blocked_terms: Iterable[str] = (),
    image_blocklist: Iterable[int] = (),
) -> Verdict:
    """Block on a blocked term or a blocklisted image; quarantine for review on PII or an unreadable image; pass
    otherwise."""
    texts = dict(metadata)
    if content_type.startswith("text/"):
        texts["file"] = content[:TEXT_LIMIT].decode("utf-8", errors="replace")
    evidence: list[dict[str, str]] = []
    categories: set[str] = set()
    terms = [t.lower() for t in blocked_terms if t.strip()]
    for where, text in texts.items():
        lowered = text.lower()
        for term in terms:
            if re.search(rf"(?<!\w){re.escape(term)}(?!\w)", lowered):
                evidence.append({"kind": "blocked_term", "where": where, "match": term})
                categories.add("policy")
    unreadable = False
    if content_type.startswith("image/") and content:
        try:
            digest = difference_hash(content)
        except Exception:  # a file the sniffer called an image that Pillow cannot open: a person looks at it
            evidence.append({"kind": "unreadable_image", "where": "file", "match": content_type})
            unreadable = True
        else:
            for listed in image_blocklist:
                if bin(digest ^ listed).count("1") <= SAME_IMAGE_BITS:
                    evidence.append({"kind": "blocklisted_image", "where": "file", "match": f"{listed:016x}"})
                    categories.add("copyright")
                    break
    pii = [finding for where, text in texts.items() for finding in pii_findings(text, where)]
    if pii:
        categories.add("pii")
        evidence += pii
    if categories - {"pii"}:
        verdict = BLOCK
    elif pii or unreadable:
        verdict = QUARANTINE
    else:
        verdict = PASS
    return Verdict(verdict, tuple(sorted(categories)), tuple(evidence))
