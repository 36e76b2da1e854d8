"""Where model files come from, how downloads are verified, and which provider runs them."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import onnxruntime as ort
import pytest

from tagger.analyzers.models import ModelError, ModelFile, download, load_manifest, package_file, resolve_file
from tagger.analyzers.runtime import RuntimeOptions, choose_providers, create_session

MANIFEST = load_manifest()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a folder (the only kind of download tests make)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def test_every_manifest_file_ships_in_its_package_with_the_recorded_hash() -> None:
    for spec in MANIFEST.values():
        for file in spec.files:
            resolved = resolve_file(file)
            assert resolved.origin == "package" and resolved.sha256 == file.sha256, file.name


def test_a_file_in_the_users_folder_wins_and_is_recorded_as_theirs(tmp_path: Path) -> None:
    file = MANIFEST["nudenet_320n"].files[0]
    (tmp_path / file.name).write_bytes(b"my own weights")
    resolved = resolve_file(file, user_dirs=[tmp_path])
    assert resolved.origin == "user" and resolved.sha256 == hashlib.sha256(b"my own weights").hexdigest()


def test_a_download_is_verified_and_renamed_into_place(tmp_path: Path, file_server: tuple[str, Path]) -> None:
    url, folder = file_server
    (folder / "model.onnx").write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(b"weights" * 1000).hexdigest()
    target = download(f"{url}/model.onnx", tmp_path / "models" / "model.onnx", digest)
    assert target.read_bytes() == b"weights" * 1000
    assert list(target.parent.iterdir()) == [target]


def test_a_download_with_the_wrong_hash_leaves_nothing(tmp_path: Path, file_server: tuple[str, Path]) -> None:
    url, folder = file_server
    (folder / "model.onnx").write_bytes(b"tampered")
    target = tmp_path / "models" / "model.onnx"
    with pytest.raises(ModelError, match="expected 000000000000"):
        download(f"{url}/model.onnx", target, "0" * 64)
    assert list(target.parent.iterdir()) == []


def test_nothing_is_downloaded_unless_allowed(tmp_path: Path, file_server: tuple[str, Path]) -> None:
    url, folder = file_server
    (folder / "x.onnx").write_bytes(b"x")
    file = ModelFile(name="x.onnx", sha256=hashlib.sha256(b"x").hexdigest(), url=f"{url}/x.onnx")
    with pytest.raises(ModelError, match="set allow_download: true"):
        resolve_file(file, download_dir=tmp_path)
    resolved = resolve_file(file, download_dir=tmp_path, allow_download=True)
    assert resolved.origin == "download" and resolved.path.read_bytes() == b"x"


def test_providers_follow_the_preference_order_with_cpu_last() -> None:
    available = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert choose_providers(available) == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                           "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider", "AzureExecutionProvider"]) == ["CPUExecutionProvider"]


def test_a_provider_that_cannot_start_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine has no GPU: an onnxruntime that claims CUDA must still end up on the CPU.
    claimed = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: claimed)
    messages: list[tuple[str, str]] = []
    model = package_file(MANIFEST["nudenet_320n"].files[0])
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):  # onnxruntime's own complaint
        session = create_session(model, "nudenet", RuntimeOptions(threads=1), lambda *m: messages.append(m))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert any(level == "warning" and "CUDAExecutionProvider" in text for level, text in messages)
