"""download() against a local HTTP server on 127.0.0.1, and datasets fetched through it."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib
import io
import pickle
import socket
import struct
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from nnscratch.data import DownloadError, data_root, download
from nnscratch.data.download import resolve_url

# The package re-exports functions named like their modules; patch the modules themselves.
cifar = importlib.import_module("nnscratch.data.cifar")
fashion_mnist = importlib.import_module("nnscratch.data.fashion_mnist")

PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several read chunks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, bytes]] = {}  # replaced per server
    requests: ClassVar[list[str]] = []

    def do_GET(self):
        self.requests.append(self.path)
        if self.path == "/slow":
            time.sleep(1.0)
            return
        body = self.routes.get(self.path.removeprefix("/truncated"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/truncated"):
            self.wfile.write(body[: len(body) // 3])  # then the connection closes
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """Serve ``routes`` (path -> bytes) on 127.0.0.1; yields (base_url, routes, requests)."""
    handler = type("TestHandler", (Handler,), {"routes": {"/file.bin": PAYLOAD}, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    httpd.handle_error = lambda *args: None  # the slow handler writes to a closed socket
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.routes, handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_good_checksum_writes_the_file(server, tmp_path):
    base, _, _ = server
    dest = download(f"{base}/file.bin", tmp_path / "sub" / "file.bin", PAYLOAD_MD5, progress=False)
    assert dest == tmp_path / "sub" / "file.bin"
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["file.bin"]  # no temporary file left over


def test_bad_checksum_names_file_expected_and_got_and_leaves_nothing(server, tmp_path):
    base, _, _ = server
    wrong = "0" * 32
    with pytest.raises(ValueError) as err:
        download(f"{base}/file.bin", tmp_path / "file.bin", wrong, progress=False)
    message = str(err.value)
    assert "file.bin" in message and wrong in message and PAYLOAD_MD5 in message
    assert leftovers(tmp_path) == []


def test_bad_checksum_keeps_an_existing_file(server, tmp_path):
    base, _, _ = server
    (tmp_path / "file.bin").write_bytes(b"old")
    with pytest.raises(ValueError, match="checksum"):
        download(f"{base}/file.bin", tmp_path / "file.bin", "0" * 32, progress=False)
    assert (tmp_path / "file.bin").read_bytes() == b"old"
    assert leftovers(tmp_path) == ["file.bin"]


def test_interrupted_transfer_is_an_error_and_leaves_nothing(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError, match=rf"closed after \d+ of {len(PAYLOAD)} bytes"):
        download(f"{base}/truncated/file.bin", tmp_path / "file.bin", None, progress=False)
    assert leftovers(tmp_path) == []


def test_http_error_and_timeout(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/missing.bin", tmp_path / "missing.bin", None, progress=False)
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="slow"):
        download(f"{base}/slow", tmp_path / "slow", None, progress=False, timeout=0.2)
    assert time.perf_counter() - start < 0.9
    assert leftovers(tmp_path) == []


def test_progress_bar_does_not_change_the_result(server, tmp_path, capsys):
    base, _, _ = server
    download(f"{base}/file.bin", tmp_path / "file.bin", PAYLOAD_MD5, progress=True)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert "file.bin" in capsys.readouterr().err  # tqdm's bar, labelled with the file


def test_mirror_replaces_scheme_and_host(monkeypatch):
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    monkeypatch.delenv("NNSCRATCH_MIRROR", raising=False)
    assert resolve_url(url) == url
    monkeypatch.setenv("NNSCRATCH_MIRROR", "http://127.0.0.1:9/data/")
    assert resolve_url(url) == "http://127.0.0.1:9/data/~kriz/cifar-10-python.tar.gz"
    assert resolve_url(url, "http://10.0.0.1") == "http://10.0.0.1/~kriz/cifar-10-python.tar.gz"


def test_mirror_argument_is_used(server, tmp_path, monkeypatch):
    base, routes, requests = server
    monkeypatch.setenv("NNSCRATCH_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    routes["/files/file.bin"] = PAYLOAD
    dest = download(
        "https://example.invalid/files/file.bin",
        tmp_path / "f",
        PAYLOAD_MD5,
        progress=False,
        mirror=base,
    )
    assert dest.read_bytes() == PAYLOAD and requests == ["/files/file.bin"]


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("NNSCRATCH_DATA")
    assert data_root().parts[-2:] == (".cache", "nnscratch")


# --- datasets through the download path, with the mirror pointed at the local server ---


def tiny_cifar10_tarball(n=2):
    """A minimal cifar-10-python.tar.gz (pickled by today's NumPy); returns (bytes, train images)."""
    rng = np.random.default_rng(0)
    buf, train = io.BytesIO(), []
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {"batches.meta": {b"label_names": [b"c%d" % k for k in range(10)]}}
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
            train += [images] if name != "test_batch" else []
            members[name] = {b"data": images.reshape(n, -1), b"labels": [1] * n}
        for name, obj in members.items():
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue(), np.concatenate(train)


def tiny_idx_gz(values: np.ndarray) -> tuple[bytes, bytes]:
    """(gzipped, raw) IDX bytes of a uint8 array."""
    raw = struct.pack(">4B", 0, 0, 8, values.ndim) + struct.pack(f">{values.ndim}I", *values.shape)
    raw += values.astype(np.uint8).tobytes()
    return gzip.compress(raw), raw


def test_cifar10_downloaded_through_mirror(server, tmp_path, monkeypatch):
    base, routes, requests = server
    tarball, train_images = tiny_cifar10_tarball()
    routes["/~kriz/cifar-10-python.tar.gz"] = tarball
    monkeypatch.setenv("NNSCRATCH_MIRROR", base)
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "cache"))

    # The official checksum does not match the tiny archive: refused, nothing kept.
    with pytest.raises(ValueError, match=cifar.CIFAR10.md5):
        cifar.cifar10()
    assert not (tmp_path / "cache" / "cifar-10-python.tar.gz").exists()

    tiny_md5 = hashlib.md5(tarball).hexdigest()
    monkeypatch.setattr(cifar, "CIFAR10", dataclasses.replace(cifar.CIFAR10, md5=tiny_md5))
    train, _ = cifar.cifar10()
    np.testing.assert_array_equal(train.images, train_images)
    assert requests[-1] == "/~kriz/cifar-10-python.tar.gz"
    assert (tmp_path / "cache" / "cifar-10-python.tar.gz").is_file()
    count = len(requests)
    train2, _ = cifar.cifar10(download=False)  # now served from the cache
    np.testing.assert_array_equal(train2.labels, train.labels)
    assert len(requests) == count


def test_fashion_mnist_downloaded_through_mirror(server, tmp_path, monkeypatch):
    base, routes, requests = server
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, size=(6, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, size=6),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, size=(4, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, size=4),
    }
    files = {name: tiny_idx_gz(a) for name, a in arrays.items()}
    for name, (gz, _) in files.items():
        routes[f"/zalandoresearch/fashion-mnist/master/data/fashion/{name}"] = gz
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-copy")
    monkeypatch.setattr(
        fashion_mnist,
        "FILES",
        {
            n: (hashlib.md5(gz).hexdigest(), hashlib.md5(raw).hexdigest())
            for n, (gz, raw) in files.items()
        },
    )
    train, test = fashion_mnist.fashion_mnist(tmp_path, mirror=base)
    assert len(requests) == 4
    np.testing.assert_array_equal(train.images[:, 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(test.labels, arrays["t10k-labels-idx1-ubyte.gz"])
    assert sorted(p.name for p in (tmp_path / "fashion-mnist").iterdir()) == sorted(files)
    assert (
        gzip.decompress((tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
        == files["t10k-labels-idx1-ubyte.gz"][1]
    )


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens (as when the network is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_offline_error_says_which_file_where_to_put_it_and_the_alternatives(tmp_path):
    dest = tmp_path / "data" / "cifar-10-python.tar.gz"
    with pytest.raises(DownloadError) as err:
        download(f"{closed_port_url()}/x/cifar-10-python.tar.gz", dest, None, progress=False)
    message = str(err.value)
    assert message.startswith("Could not download cifar-10-python.tar.gz from http://127.0.0.1")
    assert f"put cifar-10-python.tar.gz at {dest} yourself" in message
    assert "download=False" in message and "--no-download" in message
    assert "NNSCRATCH_MIRROR" in message and message.endswith(".")
    assert not dest.parent.exists() or leftovers(dest.parent) == []


def test_dataset_download_failure_names_the_dataset_file(tmp_path):
    with pytest.raises(DownloadError, match=r"put cifar-10-python.tar.gz at .*cache"):
        cifar.cifar10(tmp_path / "cache", mirror=closed_port_url())
