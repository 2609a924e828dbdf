"""Derivatives of uploaded media: thumbnails with Pillow; poster frames and web MP4s with ffmpeg where installed."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from PIL import Image

from mm_pipelines.media import derivatives
from mm_pipelines.media.derivatives import DerivativeError, derivatives_for, poster_frame, thumbnail, transcode

pytestmark = pytest.mark.unit

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not on PATH: poster frames and transcodes are not made here"
)


def _image(size=(1600, 900), mode="RGB", fmt="PNG", color=(200, 30, 30), **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_a_thumbnail_is_a_jpeg_whose_longest_side_is_320_with_the_aspect_ratio_kept():
    thumb = _open(thumbnail(_image((1600, 900))))
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (320, 180))
    portrait = _open(thumbnail(_image((900, 1600)), max_side=200))
    assert portrait.size == (112, 200)


@pytest.mark.parametrize(
    ("mode", "fmt", "color"), [("RGBA", "PNG", (10, 20, 30, 128)), ("P", "GIF", 3), ("L", "PNG", 90)]
)
def test_images_of_other_modes_become_rgb_jpegs(mode, fmt, color):
    thumb = _open(thumbnail(_image((640, 480), mode, fmt, color)))
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (320, 240))


def test_transparent_pixels_become_white_not_black():
    thumb = _open(thumbnail(_image((400, 400), "RGBA", "PNG", (0, 0, 0, 0))))
    assert all(channel > 245 for channel in thumb.getpixel((100, 100)))


def test_the_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    thumb = _open(thumbnail(_image((640, 480), fmt="JPEG", exif=exif.tobytes())))
    assert thumb.size == (240, 320)
    assert thumb.getexif().get(0x0112) in (None, 1)


@pytest.mark.parametrize(
    "data", [b"not an image at all", _image((64, 64))[:60], b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b""]
)
def test_corrupt_images_raise_a_derivative_error_saying_what_failed(data):
    with pytest.raises(DerivativeError, match="thumbnail: the image does not decode"):
        thumbnail(data)
    assert issubclass(DerivativeError, ValueError)


def test_derivatives_are_chosen_by_content_type(monkeypatch):
    [(kind, content_type, data)] = derivatives_for("image/png", _image((800, 600)))
    assert (kind, content_type, _open(data).size) == ("thumbnail", "image/jpeg", (320, 240))
    assert [k for k, _, _ in derivatives_for("IMAGE/PNG; charset=binary", _image((10, 10)))] == ["thumbnail"]
    assert derivatives_for("text/plain", b"hello") == []
    assert derivatives_for("application/pdf", b"%PDF-1.7") == []
    assert derivatives_for("audio/mpeg", b"ID3") == []
    assert derivatives_for(None, b"") == []
    monkeypatch.setattr(derivatives.shutil, "which", lambda name: None)
    assert derivatives_for("video/mp4", b"\x00\x00\x00\x18ftypisom") == []
    assert derivatives.kinds_for("video/mp4") == []
    with pytest.raises(DerivativeError, match="ffmpeg is not on PATH"):
        poster_frame(b"whatever")
    monkeypatch.setattr(derivatives.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert derivatives.kinds_for("video/webm") == ["poster", "transcode"]


@pytest.fixture(scope="module")
def test_video(tmp_path_factory) -> bytes:
    """Two seconds of ffmpeg's test pattern with a tone, 1280x960 (so the transcode has to scale it down)."""
    out = tmp_path_factory.mktemp("video") / "testsrc.mp4"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=duration=2:size=1280x960:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(out),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return out.read_bytes()


@needs_ffmpeg
def test_a_poster_frame_is_a_jpeg_and_the_transcode_an_mp4_of_at_most_720_lines(test_video):
    poster = _open(poster_frame(test_video))
    assert (poster.format, poster.size) == ("JPEG", (1280, 960))
    mp4 = transcode(test_video)
    assert mp4[4:8] == b"ftyp"
    assert _open(poster_frame(mp4)).size == (960, 720)  # scaled to 720 lines, aspect ratio kept
    assert [kind for kind, _, _ in derivatives_for("video/mp4", test_video)] == ["poster", "transcode"]


@needs_ffmpeg
def test_a_video_shorter_than_a_second_gets_its_first_frame_and_a_broken_one_an_error(tmp_path):
    out = tmp_path / "short.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=0.4:size=320x240",
         "-pix_fmt", "yuv420p", str(out)],
        check=True,
        timeout=60,
    )  # fmt: skip
    assert _open(poster_frame(out.read_bytes())).format == "JPEG"
    with pytest.raises(DerivativeError, match="transcode: ffmpeg failed"):
        transcode(b"\x00\x00\x00\x18ftypisom not really a video")
