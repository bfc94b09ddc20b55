"""Banner pictures: generated SVGs, or the files of --images DIR with their real type."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

WIDTH, HEIGHT = 300, 250

# Sniffed from the bytes, not the name: the real set's .png files hold JPEG data.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff(data: bytes) -> str | None:
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def colour(banner_id: int) -> tuple[int, int]:
    """A hue and a lighter companion hue, stable per banner id."""
    h = hashlib.blake2b(str(banner_id).encode(), digest_size=2).digest()
    hue = int.from_bytes(h, "big") % 360
    return hue, (hue + 40) % 360


@functools.lru_cache(maxsize=4096)
def banner_svg(banner_id: int) -> bytes:
    hue, hue2 = colour(banner_id)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Banner {banner_id}">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="hsl({hue},70%,45%)"/>'
        f'<stop offset="1" stop-color="hsl({hue2},70%,60%)"/></linearGradient></defs>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#g)"/>'
        f'<text x="150" y="120" font-family="sans-serif" font-size="44" font-weight="bold" '
        f'fill="#fff" text-anchor="middle">{banner_id}</text>'
        f'<text x="150" y="165" font-family="sans-serif" font-size="18" fill="#fff" '
        f'text-anchor="middle">banner</text></svg>'
    ).encode()


class ImageDir:
    """image_<id>.png files of one folder; only names built from an integer id are
    ever opened, so no path from a request reaches the file system."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder).resolve() if folder else None
        self._cache: dict[int, tuple[bytes, str] | None] = {}

    def has(self, banner_id: int) -> bool:
        return self.get(banner_id) is not None

    def get(self, banner_id: int) -> tuple[bytes, str] | None:
        if self.folder is None:
            return None
        if banner_id in self._cache:
            return self._cache[banner_id]
        path = self.folder / f"image_{int(banner_id)}.png"
        found = None
        try:
            if path.is_file() and path.stat().st_size <= 5 * 1024 * 1024:
                data = path.read_bytes()
                mime = sniff(data)
                if mime:
                    found = (data, mime)
        except OSError:
            found = None
        if len(self._cache) < 10_000:
            self._cache[banner_id] = found
        return found
