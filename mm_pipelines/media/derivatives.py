"""Derivatives of an uploaded version: a thumbnail of an image, a poster frame and a web MP4 of a video.

Pure functions over bytes, no Dagster and no stores: the job decides where the results go. Images are decoded
with Pillow; videos need the `ffmpeg` binary on PATH and get no derivatives where it is missing.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

THUMBNAIL = "thumbnail"
POSTER = "poster"
TRANSCODE = "transcode"
JPEG = "image/jpeg"
MP4 = "video/mp4"
JPEG_QUALITY = 85
FFMPEG_TIMEOUT_S = 600
POSTER_AT_S = 1.0
MAX_VIDEO_HEIGHT = 720


class DerivativeError(ValueError):
    """A derivative could not be made from the file (it does not decode, or ffmpeg failed)."""


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _to_rgb(img: Image.Image) -> Image.Image:
    """JPEG has no alpha: transparent pixels become white, not the black a plain convert("RGB") gives."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def thumbnail(image_bytes: bytes, max_side: int = 320) -> bytes:
    """A JPEG whose longest side is at most `max_side`, upright (EXIF orientation applied), aspect ratio kept."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = _to_rgb(upright)
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return _jpeg(rgb)
    except Image.DecompressionBombError as e:
        raise DerivativeError(f"thumbnail: the image is too large to decode safely ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DerivativeError(f"thumbnail: the image does not decode ({type(e).__name__}: {e})") from e


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def _ffmpeg(what: str, args: list[str]) -> None:
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise DerivativeError(f"{what}: ffmpeg is not on PATH")
    try:
        subprocess.run(
            [binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
            capture_output=True,
            check=True,
            timeout=FFMPEG_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise DerivativeError(f"{what}: ffmpeg did not finish within {FFMPEG_TIMEOUT_S} s") from e
    except subprocess.CalledProcessError as e:
        detail = e.stderr.decode(errors="replace").strip()[-500:] or f"exit status {e.returncode}"
        raise DerivativeError(f"{what}: ffmpeg failed: {detail}") from e


def _written(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() and path.stat().st_size > 0 else None


def poster_frame(video_bytes: bytes) -> bytes:
    """A JPEG of the frame at about 1 s (past a fade-in), or of the first frame of a shorter video."""
    with tempfile.TemporaryDirectory(prefix="mm-poster-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "poster.jpg"
        src.write_bytes(video_bytes)
        frame = ["-map", "0:v:0", "-frames:v", "1", "-q:v", "3", str(out)]
        try:
            _ffmpeg("poster frame", ["-ss", str(POSTER_AT_S), "-i", str(src), *frame])
        except DerivativeError:
            pass  # seeking past the end of a short video: fall back to the first frame below
        data = _written(out)
        if data is None:
            _ffmpeg("poster frame", ["-i", str(src), *frame])
            data = _written(out)
        if data is None:
            raise DerivativeError("poster frame: the video has no frame ffmpeg could decode")
        return data


def transcode(video_bytes: bytes) -> bytes:
    """An H.264/AAC MP4 for the web: at most 720 lines (never upscaled), the index first so playback starts early."""
    with tempfile.TemporaryDirectory(prefix="mm-transcode-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out.mp4"
        src.write_bytes(video_bytes)
        _ffmpeg(
            "transcode",
            [
                "-i",
                str(src),
                "-map",
                "0:v:0",
                "-map",
                "0:a:0?",
                "-vf",
                f"scale=-2:'min({MAX_VIDEO_HEIGHT},trunc(ih/2)*2)'",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-movflags",
                "+faststart",
                str(out),
            ],
        )
        data = _written(out)
        if data is None:
            raise DerivativeError("transcode: ffmpeg wrote no output")
        return data


def kinds_for(content_type: str | None) -> list[str]:
    """The kinds `derivatives_for` makes of this type here (videos only where ffmpeg is on PATH)."""
    base = _base_type(content_type)
    if base.startswith("image/"):
        return [THUMBNAIL]
    if base.startswith("video/") and ffmpeg_available():
        return [POSTER, TRANSCODE]
    return []


def derivatives_for(content_type: str | None, data: bytes) -> list[tuple[str, str, bytes]]:
    """(kind, content type, bytes) of every derivative of a file of this (sniffed) type; none for other types."""
    made = {
        THUMBNAIL: lambda: (THUMBNAIL, JPEG, thumbnail(data)),
        POSTER: lambda: (POSTER, JPEG, poster_frame(data)),
        TRANSCODE: lambda: (TRANSCODE, MP4, transcode(data)),
    }
    return [made[kind]() for kind in kinds_for(content_type)]
