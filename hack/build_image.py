"""Build the operator image without a container engine: an OCI image archive, reproducibly.

Two layers:

1. the base: Debian packages (``hack/image/debian-packages.txt``) unpacked with ``dpkg-deb``
   plus the project's third-party dependencies installed by pip at the versions of the
   development environment (``pip freeze``), a ``nonroot`` user (65532) and ``/tmp``;
2. the project: its wheel, built from the working tree.

Every file in a layer gets the owner root (or nonroot for its home), the mtime
``SOURCE_DATE_EPOCH`` and a sorted place in the tar, so the same inputs give the same digest.
The base layer is cached under ``$POLYCULTURE_CACHE/image/`` keyed by its inputs (package
names and resolved versions, the pip constraints, the Python version); the project layer is
rebuilt each time (seconds). The archive is an OCI image layout in a tar (``oci-archive:`` for
skopeo, ``ctr image import``) that also carries a ``manifest.json`` for ``docker load``.

The last two lines printed are the archive's path and the image (manifest) digest.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES_FILE = REPO / "hack" / "image" / "debian-packages.txt"
PYTHON = "python3.11"
SITE = f"usr/local/lib/{PYTHON}/dist-packages"
UID = GID = 65532
DEFAULT_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z, when SOURCE_DATE_EPOCH is not set
REPOSITORY = "ghcr.io/polyculture/polyculture"
ENTRYPOINT = [f"/usr/bin/{PYTHON}", "-m", "polyculture"]


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("POLYCULTURE_CACHE") or str(Path.home() / ".cache" / "polyculture")
    return Path(root) / "image"


def project_version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- inputs ----------------------------------------------------------------------------------


def debian_packages() -> list[str]:
    lines = PACKAGES_FILE.read_text().splitlines()
    return [s for line in lines if (s := line.split("#", 1)[0].strip())]


def resolved_versions(packages: list[str], refreshed: bool = False) -> dict[str, str]:
    out = subprocess.run(
        ["apt-cache", "policy", *packages], capture_output=True, text=True, check=True
    ).stdout
    versions: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.rstrip(":")
        elif line.strip().startswith("Candidate:"):
            versions[current] = line.split(":", 1)[1].strip()
    missing = [p for p in packages if versions.get(p) in (None, "(none)")]
    if missing and not refreshed and os.geteuid() == 0:
        log("apt knows no candidate for some packages: refreshing the package lists")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        return resolved_versions(packages, refreshed=True)
    if missing:
        raise SystemExit(f"image: apt knows no candidate for {missing}: run `apt-get update`")
    return versions


def constraints() -> str:
    """The third-party versions of the development environment (the tested ones)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "".join(
        line + "\n" for line in sorted(out.splitlines()) if not line.startswith("polyculture")
    )


def requirements() -> str:
    """The project's runtime requirements (pyproject.toml), one a line."""
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return "".join(f"{dep}\n" for dep in deps)


def base_key(versions: dict[str, str], pins: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(versions, sort_keys=True).encode())
    h.update(pins.encode())
    h.update(requirements().encode())
    h.update(PYTHON.encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


# --- root filesystems ------------------------------------------------------------------------


def unpack_debs(versions: dict[str, str], root: Path, debs: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    wanted = [f"{p}={v}" for p, v in sorted(versions.items())]
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    subprocess.run(["apt-get", "download", "-qq", *sandbox, *wanted], cwd=debs, check=True)
    unpacked = set()
    for deb in sorted(debs.glob("*.deb")):  # the cache may hold older versions too
        name, version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Package", "Version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")[:2]
        name, version = name.split(":", 1)[1].strip(), version.split(":", 1)[1].strip()
        if versions.get(name) == version:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            unpacked.add(name)
    if unpacked != set(versions):
        raise SystemExit(f"image: packages not downloaded: {sorted(set(versions) - unpacked)}")
    # what maintainer scripts or a base system would have made
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:{UID}:{GID}:nonroot:/home/nonroot:"
        "/usr/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nnonroot:x:{GID}:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    (root / "tmp").mkdir(exist_ok=True)
    (root / "home" / "nonroot").mkdir(parents=True, exist_ok=True)
    (root / "usr" / "local" / "lib" / PYTHON / "dist-packages").mkdir(parents=True, exist_ok=True)
    python3 = root / "usr" / "bin" / "python3"
    if not python3.exists():
        python3.symlink_to(PYTHON)
    for doc in ("usr/share/doc", "usr/share/man", "usr/share/lintian", "usr/share/info"):
        shutil.rmtree(root / doc, ignore_errors=True)


def pip_install(root: Path, args: list[str], pip_cache: Path) -> None:
    target = root / SITE
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            "--cache-dir",
            str(pip_cache),
            "--target",
            str(target),
            *args,
        ],
        check=True,
    )
    # console scripts carry this machine's interpreter path; the image runs `python -m`
    shutil.rmtree(target / "bin", ignore_errors=True)
    # where pip found a wheel (a temporary path) is no part of the image
    for direct_url in target.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()
        record = direct_url.with_name("RECORD")
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(x for x in lines if "/direct_url.json," not in x))


def build_wheel(out: Path, epoch: int) -> Path:
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        env=env,
    )
    return next(out.glob("polyculture-*.whl"))


# --- layers ----------------------------------------------------------------------------------


def walk(root: Path) -> Iterator[Path]:
    """Every path under root, sorted, parents first."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted([*dirnames, *filenames]):
            yield base / name


def write_layer(root: Path, out: Path, epoch: int) -> str:
    """Tar ``root`` reproducibly into ``out``; return the tar's sha256 (the diff id)."""
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(walk(root), key=lambda p: p.relative_to(root).as_posix()):
            rel = path.relative_to(root).as_posix()
            info = tar.gettarinfo(str(path), arcname=rel)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if rel == "home/nonroot":
                info.uid, info.gid = UID, GID
            if rel == "tmp":
                info.mode = 0o1777
            elif info.isfile():
                info.mode = 0o755 if info.mode & 0o111 else 0o644
            elif info.isdir():
                info.mode = 0o755
            info.pax_headers = {}
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    digest = sha256_file(tmp)
    tmp.replace(out)
    return digest


def base_layer(pip_cache: Path) -> tuple[Path, str, dict[str, str]]:
    """The cached base layer (built when its inputs changed): path, diff id, package versions."""
    packages = debian_packages()
    versions = resolved_versions(packages)
    pins = constraints()
    key = base_key(versions, pins)
    layer = cache_dir() / f"base-{key}.tar"
    meta = layer.with_suffix(".json")
    if layer.is_file() and meta.is_file():
        log(f"base layer cached: {layer.name}")
        return layer, json.loads(meta.read_text())["diff_id"], versions
    log(f"building the base layer {key} (Debian packages, Python dependencies)")
    work = cache_dir() / f"work-{key}"
    shutil.rmtree(work, ignore_errors=True)
    root = work / "root"
    root.mkdir(parents=True)
    unpack_debs(versions, root, cache_dir() / "debs")
    pins_file = work / "constraints.txt"
    pins_file.write_text(pins)
    requirements_file = work / "requirements.txt"
    requirements_file.write_text(requirements())
    pip_install(root, ["-r", str(requirements_file), "-c", str(pins_file)], pip_cache)
    diff_id = write_layer(root, layer, epoch=0)
    meta.write_text(json.dumps({"diff_id": diff_id, "debian": versions}, sort_keys=True))
    shutil.rmtree(work)
    for old in cache_dir().glob("base-*"):  # one base layer is kept: the current one
        if old not in (layer, meta):
            old.unlink()
    return layer, diff_id, versions


def project_layer(out: Path, epoch: int, pip_cache: Path, wheel: Path | None) -> str:
    with tempfile.TemporaryDirectory(prefix="polyculture-image-") as tmp:
        wheel = wheel or build_wheel(Path(tmp) / "dist", epoch)
        root = Path(tmp) / "root"
        pip_install(root, ["--no-deps", str(wheel)], pip_cache)
        return write_layer(root, out, epoch)


# --- the archive ---------------------------------------------------------------------------


def blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build(out: Path, epoch: int, wheel: Path | None = None) -> tuple[Path, str]:
    version = project_version()
    pip_cache = cache_dir() / "pip"
    base, base_diff, debian = base_layer(pip_cache)
    with tempfile.TemporaryDirectory(prefix="polyculture-image-") as tmp:
        top = Path(tmp) / "project.tar"
        top_diff = project_layer(top, epoch, pip_cache, wheel)
        created = _iso(epoch)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {
                "User": f"{UID}:{GID}",
                "Entrypoint": ENTRYPOINT,
                "Cmd": ["run", "--metrics-port", "8080", "--metrics-address", "0.0.0.0"],
                "Env": [
                    "PATH=/usr/local/bin:/usr/bin:/bin",
                    "PYTHONUNBUFFERED=1",
                    "PYTHONDONTWRITEBYTECODE=1",
                    "HOME=/home/nonroot",
                ],
                "WorkingDir": "/home/nonroot",
                "ExposedPorts": {"8080/tcp": {}},
                "Labels": {
                    "org.opencontainers.image.title": "polyculture-operator",
                    "org.opencontainers.image.version": version,
                    "org.opencontainers.image.licenses": "Apache-2.0",
                    "org.polyculture.debian-packages": " ".join(
                        f"{p}={v}" for p, v in sorted(debian.items())
                    ),
                },
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{base_diff}", f"sha256:{top_diff}"]},
            "history": [
                {"created": created, "created_by": "Debian packages and Python dependencies"},
                {"created": created, "created_by": f"polyculture {version} wheel"},
            ],
        }
        config_digest, config_bytes = blob(canonical(config))
        layers = [(base, base_diff), (top, top_diff)]
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{diff}",
                    "size": path.stat().st_size,
                }
                for path, diff in layers
            ],
        }
        manifest_digest, manifest_bytes = blob(canonical(manifest))
        ref = f"{REPOSITORY}:{version}"
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "annotations": {
                        "org.opencontainers.image.ref.name": version,
                        "io.containerd.image.name": ref,
                    },
                }
            ],
        }
        docker_manifest = [
            {
                "Config": f"blobs/sha256/{config_digest.split(':')[1]}",
                "RepoTags": [ref],
                "Layers": [f"blobs/sha256/{diff}" for _, diff in layers],
            }
        ]
        files: list[tuple[str, bytes | Path]] = [
            ("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})),
            ("index.json", canonical(index)),
            ("manifest.json", canonical(docker_manifest)),
            (f"blobs/sha256/{config_digest.split(':')[1]}", config_bytes),
            (f"blobs/sha256/{manifest_digest.split(':')[1]}", manifest_bytes),
            *[(f"blobs/sha256/{diff}", path) for path, diff in layers],
        ]
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".tmp")
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            for directory in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(directory)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
                tar.addfile(info)
            for name, content in sorted(files, key=lambda item: item[0]):
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = 0o644, epoch
                if isinstance(content, Path):
                    info.size = content.stat().st_size
                    with content.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        tmp_out.replace(out)
    return out, manifest_digest


def _iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "out" / "image" / f"polyculture-{project_version()}.tar"
    )
    parser.add_argument(
        "--wheel", type=Path, help="the project's wheel, already built (default: build it now)"
    )
    args = parser.parse_args(argv)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or DEFAULT_EPOCH)
    path, digest = build(args.out.resolve(), epoch, args.wheel.resolve() if args.wheel else None)
    print(path)
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
