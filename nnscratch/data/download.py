"""Fetch a dataset file over HTTP(S) into the cache: streamed, checksummed, atomic.

The cache root is ``$NNSCRATCH_DATA`` if set, else ``~/.cache/nnscratch``. A mirror
replaces the scheme and host of an official URL and keeps its path: with
``NNSCRATCH_MIRROR=http://10.0.0.5:8000/data`` the file
``https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz`` is fetched from
``http://10.0.0.5:8000/data/~kriz/cifar-10-python.tar.gz``. The per-call ``mirror=``
argument wins over the environment variable.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from nnscratch.utils.atomic import atomic_write

DATA_ENV = "NNSCRATCH_DATA"
MIRROR_ENV = "NNSCRATCH_MIRROR"
TIMEOUT = 30.0  # seconds to connect, and the longest wait for any one read
CHUNK = 1 << 16


class DownloadError(OSError):
    """A transfer failed: HTTP error, unreachable host, timeout, or a truncated body."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The directory datasets live in: ``root`` if given, else ``$NNSCRATCH_DATA``,
    else ``~/.cache/nnscratch``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nnscratch"


def resolve_url(url: str, mirror: str | None = None) -> str:
    """``url`` with its scheme and host replaced by ``mirror`` (or ``$NNSCRATCH_MIRROR``)."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return mirror.rstrip("/") + path


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str | None,
    progress: bool = True,
    *,
    mirror: str | None = None,
    timeout: float = TIMEOUT,
) -> Path:
    """Download ``url`` (through the mirror, if any) to ``dest`` and return ``dest``.

    The body is streamed into a temporary file beside ``dest`` while its MD5 is
    computed; only a complete transfer with the expected checksum is renamed to
    ``dest``. A wrong checksum raises ``ValueError`` (file, expected and got), a
    failed or truncated transfer raises :class:`DownloadError`; either way no file is
    left behind. ``md5=None`` skips the check (for callers that verify the content
    themselves).
    """
    dest = Path(dest)
    url = resolve_url(url, mirror)
    request = urllib.request.Request(url, headers={"User-Agent": "nnscratch"})
    received, total = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digest = hashlib.md5(usedforsecurity=False)
            with (
                atomic_write(dest, "wb") as f,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                if total is not None and received != total:
                    raise DownloadError(_truncated(url, dest, received, total))
                got = digest.hexdigest()
                if md5 is not None and got != md5.lower():
                    raise ValueError(
                        f"{dest.name}: checksum mismatch for {url}: expected md5 {md5.lower()}, "
                        f"got {got}; the download was discarded"
                    )
    except http.client.IncompleteRead as e:
        raise DownloadError(_truncated(url, dest, received, total)) from e
    except urllib.error.HTTPError as e:
        raise DownloadError(_failed(url, dest, f"HTTP {e.code} {e.reason}")) from e
    except urllib.error.URLError as e:
        raise DownloadError(_failed(url, dest, f"cannot connect ({e.reason})")) from e
    except (TimeoutError, ConnectionError) as e:
        raise DownloadError(
            _failed(url, dest, f"transfer failed after {received} bytes ({e!r})")
        ) from e
    return dest


def _failed(url: str, dest: Path, reason: str) -> str:
    """The message of a failed download: what failed, and how to do without the network."""
    return (
        f"Could not download {dest.name} from {url}: {reason}; nothing was written. "
        f"Without network access, put {dest.name} at {dest} yourself and pass download=False "
        "(--no-download on the command line), or set NNSCRATCH_MIRROR to a server that has it."
    )


def _truncated(url: str, dest: Path, received: int, total: int | None) -> str:
    return _failed(
        url, dest, f"connection closed after {received} of {total} bytes (partial file discarded)"
    )
