"""Headless Chromium (Debian's ``chromium``) with the network cut off, and a tiny PNG reader.

The browser runs in a network namespace of its own (``unshare --net``: only a loopback that is
down), so a page that needed any other host could not get it: what renders, renders from the
file alone.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Belt and braces inside the namespace: no name resolves, no proxy answers.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium was not found: apt-get install -y chromium")


def offline_prefix() -> list[str]:
    """The command that runs a program without a network: a new network namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("unshare (util-linux) was not found")
    # Root may create a network namespace directly; anyone else through a user namespace.
    return [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--map-root-user", "--net"]


@dataclass(frozen=True)
class Rendering:
    dom: str
    screenshot: Path


def render(page: Path, screenshot: Path, width: int = 1240, height: int = 2400) -> Rendering:
    """Open ``page`` offline: its DOM after load, and a screenshot of the window."""
    with tempfile.TemporaryDirectory(prefix="finbatch-chromium-") as profile:
        command = [
            *offline_prefix(),
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={screenshot}",
            "--dump-dom",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not screenshot.exists():
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return Rendering(done.stdout, screenshot)


def network_is_cut_off() -> bool:
    """True when a process under :func:`offline_prefix` cannot reach even this machine."""
    probe = "import socket; socket.create_connection(('127.0.0.1', 9), timeout=2)"
    done = subprocess.run(
        [*offline_prefix(), "python3", "-c", probe], capture_output=True, text=True, check=False
    )
    return done.returncode != 0 and "Network is unreachable" in done.stderr


def _unfilter_sequential(kind: int, line: bytearray, previous: bytes, bpp: int) -> None:
    """Average (3) and Paeth (4) filters depend on the pixel just decoded: a plain loop."""
    for x in range(len(line)):
        left = line[x - bpp] if x >= bpp else 0
        up = previous[x]
        if kind == 3:
            line[x] = (line[x] + (left + up) // 2) & 0xFF
            continue
        corner = previous[x - bpp] if x >= bpp else 0
        p = left + up - corner
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
        pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
        line[x] = (line[x] + pred) & 0xFF


def png_pixels(path: Path) -> npt.NDArray[np.uint8]:
    """The RGB pixels (height, width, 3) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and color in (2, 6), (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, stride + 1)
    image = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = int(raw[y, 0]), raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # each byte adds the byte bpp to its left: a running sum per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).ravel()
        elif kind == 2:
            row = line + previous
        else:
            work = bytearray(line.tobytes())
            _unfilter_sequential(kind, work, previous.tobytes(), bpp)
            row = np.frombuffer(bytes(work), dtype=np.uint8)
        image[y] = row
        previous = row
    return image.reshape(height, width, bpp)[:, :, :3]


def ink(path: Path) -> float:
    """The share of pixels that are not (near) white."""
    pixels = png_pixels(path)
    return float((pixels.min(axis=2) < 235).mean())


def artifacts_dir() -> Path:
    """Where tests save what a person may want to look at (the reports' screenshots):
    ``FINBATCH_TEST_ARTIFACTS`` when set (a CI job uploads it), else ``test-artifacts/`` at the
    repository root (gitignored). Created when missing."""
    root = Path(__file__).resolve().parent.parent
    folder = Path(os.environ.get("FINBATCH_TEST_ARTIFACTS") or root / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
