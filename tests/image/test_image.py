"""The operator image that `make image` builds: an OCI archive whose entrypoint runs.

The archive is built by ``hack/build_image.py`` (the base layer comes from the cache when its
inputs did not change), unpacked layer by layer into a root filesystem, and the entrypoint is
run there with ``chroot`` as the image's user: ``--version`` and ``run --help``. Built a second
time from the same inputs it has the same digest, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from polyculture import __version__

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "build_image.py"


def build(out: Path, wheel: Path) -> tuple[Path, str]:
    proc = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out), "--wheel", str(wheel)],
        check=False,
        capture_output=True,
        text=True,
        timeout=1200,
        env=dict(os.environ, SOURCE_DATE_EPOCH="1767225600"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path, digest = proc.stdout.strip().splitlines()[-2:]
    return Path(path), digest


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def project_wheel(work: Path) -> Path:
    """The wheel both builds install: one snapshot of the sources, built once."""
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
        env=dict(os.environ, SOURCE_DATE_EPOCH="1767225600"),
        timeout=300,
    )
    return next(dist.glob("polyculture-*.whl"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """The archive, its digest, and the directory it was unpacked into."""
    work = tmp_path_factory.mktemp("image")
    archive, digest = build(work / "first.tar", project_wheel(work))
    layout = work / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="tar")
    return archive, digest, layout


def blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":")
    path = layout / "blobs" / algorithm / hexdigest
    assert sha256(path) == hexdigest, f"blob {digest} does not match its digest"
    return path


def manifest_and_config(layout: Path, digest: str) -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [digest]
    manifest = json.loads(blob(layout, digest).read_text())
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    return manifest, config


def test_archive_is_an_oci_image_of_the_chart_default(image: tuple[Path, str, Path]) -> None:
    _, digest, layout = image
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    manifest, config = manifest_and_config(layout, digest)
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"][:3] == ["/usr/bin/python3.11", "-m", "polyculture"]
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == __version__
    layers = [blob(layout, layer["digest"]) for layer in manifest["layers"]]
    assert [f"sha256:{sha256(p)}" for p in layers] == config["rootfs"]["diff_ids"]
    # the chart's default image is this one: repository and the chart's appVersion
    chart = yaml.safe_load((REPO / "charts" / "polyculture" / "Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts" / "polyculture" / "values.yaml").read_text())
    docker = json.loads((layout / "manifest.json").read_text())
    assert docker[0]["RepoTags"] == [f"{values['image']['repository']}:{chart['appVersion']}"]
    assert chart["appVersion"] == __version__


@pytest.fixture(scope="module")
def rootfs(image: tuple[Path, str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, digest, layout = image
    manifest, _ = manifest_and_config(layout, digest)
    root = tmp_path_factory.mktemp("rootfs")
    root.chmod(0o755)  # as a container runtime makes it; mktemp's 0700 shuts the user out
    for layer in manifest["layers"]:
        with tarfile.open(blob(layout, layer["digest"])) as tar:
            tar.extractall(root, filter="tar")
    return root


def in_image(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("chroot into the unpacked image needs root (CI runs `make test` as root)")
    return subprocess.run(
        [shutil.which("chroot") or "/usr/sbin/chroot", "--userspec=65532:65532", str(root), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin", "HOME": "/home/nonroot", "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_entrypoint_runs_as_nonroot_without_a_shell(rootfs: Path) -> None:
    assert not (rootfs / "bin" / "sh").exists() and not (rootfs / "usr" / "bin" / "sh").exists()
    entry = ["/usr/bin/python3.11", "-m", "polyculture"]
    version = in_image(rootfs, *entry, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"polyculture {__version__}"
    help_ = in_image(rootfs, *entry, "run", "--help")
    assert help_.returncode == 0, help_.stderr
    assert "--leader-election" in help_.stdout
    who = in_image(rootfs, entry[0], "-c", "import os; print(os.getuid(), os.getgid())")
    assert who.stdout.split() == ["65532", "65532"]
    # every operator module imports inside the image (its dependencies are all there)
    modules = in_image(
        rootfs,
        entry[0],
        "-c",
        "import polyculture.handlers.main as m; m.load_handlers(); import polyculture.statusview",
    )
    assert modules.returncode == 0, modules.stderr[-2000:]


def test_building_twice_gives_the_same_digest(
    image: tuple[Path, str, Path], tmp_path: Path
) -> None:
    first, digest, _ = image
    second, again = build(tmp_path / "second.tar", next(first.parent.glob("dist/*.whl")))
    assert again == digest
    assert sha256(second) == sha256(first)
