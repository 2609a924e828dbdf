"""What a file is, from its first bytes: a client's declared content type is checked against this, never trusted."""

from __future__ import annotations

# (offset, magic, content type); the first match wins, so longer and more specific signatures come first.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
)
# ISO base media (MP4, MOV): `ftyp` at offset 4, then a brand.
_FTYP_BRANDS = {b"qt  ": "video/quicktime"}
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
TEXT_TYPES = ("text/plain", "text/csv", "text/markdown")
OCTET_STREAM = "application/octet-stream"
SUPPORTED = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "application/pdf",
    *TEXT_TYPES,
)


def sniff(head: bytes) -> str:
    """The content type of a file starting with `head` (its first few kilobytes)."""
    for offset, magic, content_type in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if _is_text(head):
        return "text/plain"
    return OCTET_STREAM


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the end of the sample is still text.
        return e.start >= len(head) - 3 and e.reason == "unexpected end of data"
    return True


def matches(declared: str, sniffed: str) -> bool:
    """Whether a file sniffed as `sniffed` may be stored as `declared` (text subtypes all sniff as text/plain)."""
    declared = declared.split(";")[0].strip().lower()
    return declared == sniffed or (declared in TEXT_TYPES and sniffed == "text/plain")
