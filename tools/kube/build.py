"""Obtain etcd and build kube-apiserver 1.20.2 from Debian's packages, cached outside the repo.

Only the ordinary Debian client is used: ``apt-get update`` / ``apt-get source`` /
``apt-get download`` against a private sources list and private state and cache folders, and
``dpkg -x`` into a private root. Nothing under /etc/apt changes and nothing is installed.

    python3 tools/kube/build.py             # build or reuse; prints the cache folder last
    python3 tools/kube/build.py --force     # rebuild even when the cache is warm

The cache is ``$XDG_CACHE_HOME/ftctl/kube/1.20.2/`` (``~/.cache`` by default), or
``$FTCTL_KUBE_CACHE``. A warm run checks the two binaries and exits in about a second. A step
that fails prints one ``ftctl-kube: error:`` line naming it, leaves the full output in
``build.log`` beside the cache, and exits 1. Standard library only: runs on any python3.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KUBE_VERSION = "1.20.2"
ETCD_VERSION_PREFIX = "3.4."
# Debian's 1.20 source and the Go 1.19 that builds it live in bookworm; the suite is pinned so
# the same packages come on a Debian 13 machine too.
SUITE = "bookworm"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SOURCE_PACKAGE = "kubernetes"
GO = "1.19"
BUILD_DEBS = (f"golang-{GO}-go", f"golang-{GO}-src", "rsync", "libxxhash0", "libpopt0")
REFLECT2_DEB = "golang-github-modern-go-reflect2-dev"
ETCD_DEB = "etcd-server"
REFLECT2_VENDOR = Path("vendor/github.com/modern-go/reflect2")
REFLECT2_DEB_SRC = Path("usr/share/gocode/src/github.com/modern-go/reflect2")


class StepError(Exception):
    """A build step that could not be done; the message is the one line printed."""


def cache_dir() -> Path:
    """Where the binaries of this version are kept (outside the repo, keyed by version)."""
    explicit = os.environ.get("FTCTL_KUBE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ftctl" / "kube" / KUBE_VERSION


def binary_version(path: Path) -> str | None:
    """``path --version`` output, or None when it is missing or does not run."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def apiserver_ok(path: Path) -> bool:
    return f"v{KUBE_VERSION}" in (binary_version(path) or "")


def etcd_ok(path: Path) -> bool:
    return f"etcd Version: {ETCD_VERSION_PREFIX}" in (binary_version(path) or "")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (deb822 or one-line sources)."""
    explicit = os.environ.get("FTCTL_DEBIAN_MIRROR")
    if explicit:
        return explicit.rstrip("/")
    texts = []
    parts = Path("/etc/apt/sources.list.d")
    if parts.is_dir():
        texts += [p.read_text(errors="replace") for p in sorted(parts.glob("*.sources"))]
        texts += [p.read_text(errors="replace") for p in sorted(parts.glob("*.list"))]
    main = Path("/etc/apt/sources.list")
    if main.is_file():
        texts.append(main.read_text(errors="replace"))
    for text in texts:
        for match in re.finditer(r"(?m)^\s*URIs:\s*(\S+)", text):
            if not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1).rstrip("/")
        for match in re.finditer(r"(?m)^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s", text):
            if not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1).rstrip("/")
    raise StepError(
        "step 'find the Debian mirror' failed: no mirror in /etc/apt/sources.list(.d); "
        "set FTCTL_DEBIAN_MIRROR"
    )


class Builder:
    """One build: a private apt root and a temp work folder, a log beside the cache."""

    def __init__(self, work: Path, log_path: Path) -> None:
        self.work = work
        self.log_path = log_path
        self.apt = work / "apt"
        self.root = work / "root"  # packages unpacked with dpkg -x
        self.debs = work / "debs"
        self.src = work / "src"

    # -- running ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"ftctl-kube: {text}", flush=True)
        with self.log_path.open("a") as log:
            log.write(f"== {text}\n")

    def run(self, step: str, argv: list[str], *, cwd: Path | None = None, env=None) -> None:
        """Run ``argv`` (a list, never a shell string); StepError naming ``step`` if it fails."""
        with self.log_path.open("a") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            try:
                done = subprocess.run(
                    argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
                )
            except OSError as exc:
                raise StepError(f"step '{step}' failed: cannot run {argv[0]} ({exc})") from exc
        if done.returncode != 0:
            raise StepError(
                f"step '{step}' failed (exit {done.returncode}); output in {self.log_path}"
            )

    def apt_options(self) -> list[str]:
        return [
            "-o",
            f"Dir::Etc::SourceList={self.apt / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/dev/null",
            "-o",
            f"Dir::State::Lists={self.apt / 'lists'}",
            "-o",
            f"Dir::Cache={self.apt / 'cache'}",
            "-o",
            "Dir::State::status=/dev/null",  # resolve as on an empty system: download all named
            "-o",
            "APT::Sandbox::User=root",  # the private folders are root's; _apt cannot write them
            "-q",
        ]

    # -- steps --------------------------------------------------------------------------------

    def apt_update(self) -> None:
        mirror = debian_mirror()
        (self.apt / "lists" / "partial").mkdir(parents=True)
        (self.apt / "cache" / "archives" / "partial").mkdir(parents=True)
        opts = f"[signed-by={KEYRING}]"
        (self.apt / "sources.list").write_text(
            f"deb {opts} {mirror} {SUITE} main\ndeb-src {opts} {mirror} {SUITE} main\n"
        )
        self.say(f"apt-get update (private sources list, {SUITE} main)")
        self.run("apt-get update", ["apt-get", *self.apt_options(), "update"])
        # apt-get update exits 0 when a mirror cannot be reached; the lists tell.
        lists = [p.name for p in (self.apt / "lists").iterdir()]
        if not any("_Packages" in n for n in lists) or not any("_Sources" in n for n in lists):
            raise StepError(
                f"step 'apt-get update' failed: no package lists came from {mirror}; "
                f"output in {self.log_path}"
            )

    def unpack(self, *packages: str) -> None:
        """``apt-get download`` each package and ``dpkg -x`` it into the private root."""
        self.debs.mkdir(exist_ok=True)
        self.say(f"apt-get download {' '.join(packages)}")
        self.run(
            f"apt-get download {' '.join(packages)}",
            ["apt-get", *self.apt_options(), "download", *packages],
            cwd=self.debs,
        )
        for package in packages:
            found = sorted(self.debs.glob(f"{package}_*.deb"))
            if not found:
                raise StepError(f"step 'apt-get download {package}' failed: no .deb came")
            self.run(f"dpkg -x {found[-1].name}", ["dpkg", "-x", str(found[-1]), str(self.root)])

    def etcd(self) -> Path:
        self.unpack(ETCD_DEB)
        binary = self.root / "usr" / "bin" / "etcd"
        if not etcd_ok(binary):
            raise StepError(
                f"step 'check etcd' failed: {binary} is not etcd {ETCD_VERSION_PREFIX}x"
            )
        return binary

    def source_tree(self) -> Path:
        self.src.mkdir()
        self.say(f"apt-get source {SOURCE_PACKAGE} (about 34 MB)")
        self.run(
            f"apt-get source {SOURCE_PACKAGE}",
            ["apt-get", *self.apt_options(), "source", SOURCE_PACKAGE],
            cwd=self.src,
        )
        trees = [p for p in self.src.iterdir() if p.is_dir()]
        if len(trees) != 1 or not trees[0].name.endswith(KUBE_VERSION):
            names = ", ".join(p.name for p in trees) or "none"
            raise StepError(
                f"step 'apt-get source {SOURCE_PACKAGE}' failed: expected one tree of "
                f"{KUBE_VERSION}, got {names}"
            )
        return trees[0]

    def swap_reflect2(self, tree: Path) -> None:
        """The vendored reflect2 1.0.1 crashes a Go >= 1.18 binary on the first CR create."""
        self.say(f"swap vendored reflect2 1.0.1 for Debian's {REFLECT2_DEB} 1.0.2")
        vendored, fixed = tree / REFLECT2_VENDOR, self.root / REFLECT2_DEB_SRC
        if not vendored.is_dir() or not fixed.is_dir():
            raise StepError(f"step 'swap reflect2' failed: {vendored} or {fixed} missing")
        for old in [*vendored.glob("*.go"), *vendored.glob("*.s")]:
            old.unlink()
        copied = 0
        for new in sorted([*fixed.glob("*.go"), *fixed.glob("*.s")]):
            if not new.name.endswith("_test.go"):
                shutil.copy2(new, vendored / new.name)
                copied += 1
        if copied == 0:
            raise StepError(f"step 'swap reflect2' failed: no sources in {fixed}")

    def make_apiserver(self, tree: Path) -> Path:
        goroot = self.root / "usr" / "lib" / f"go-{GO}"
        if not (goroot / "bin" / "go").is_file():
            raise StepError(f"step 'find Go {GO}' failed: {goroot}/bin/go missing")
        # rsync runs from the private root with its two libraries; a wrapper keeps
        # LD_LIBRARY_PATH away from everything else the build runs.
        wrappers = self.work / "bin"
        wrappers.mkdir()
        libdirs = [str(p) for p in sorted(self.root.glob("usr/lib/*-linux-gnu")) if p.is_dir()]
        libdirs += [str(p) for p in sorted(self.root.glob("lib/*-linux-gnu")) if p.is_dir()]
        rsync = wrappers / "rsync"
        rsync.write_text(
            "#!/bin/sh\n"
            f'LD_LIBRARY_PATH="{":".join(libdirs)}" exec "{self.root}/usr/bin/rsync" "$@"\n'
        )
        rsync.chmod(0o755)
        home = self.work / "home"
        home.mkdir()
        env = {
            "PATH": f"{wrappers}:{goroot / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "GOROOT": str(goroot),
            "GOCACHE": str(self.work / "gocache"),
            "GOPROXY": "off",
            "GOFLAGS": "",
            "CGO_ENABLED": "0",
            "LANG": "C",
            "TMPDIR": str(self.work),
        }
        self.say("make WHAT=cmd/kube-apiserver (GOPATH mode, about 4-7 min on 2 cores)")
        started = time.monotonic()
        self.run(
            "make WHAT=cmd/kube-apiserver", ["make", "WHAT=cmd/kube-apiserver"], cwd=tree, env=env
        )
        binary = tree / "_output" / "bin" / "kube-apiserver"
        if not apiserver_ok(binary):
            raise StepError(
                f"step 'check kube-apiserver' failed: {binary} does not report v{KUBE_VERSION}"
            )
        self.say(f"built kube-apiserver in {time.monotonic() - started:.0f} s")
        return binary

    def apiserver(self) -> Path:
        self.unpack(*BUILD_DEBS, REFLECT2_DEB)
        tree = self.source_tree()
        self.swap_reflect2(tree)
        return self.make_apiserver(tree)


def install(binary: Path, dest: Path) -> None:
    """Copy ``binary`` next to ``dest`` and rename it into place (never a half-written file)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(binary, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(0o755)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One build per cache folder at a time (two `make test` runs share the cache)."""
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(force: bool = False) -> Path:
    """Build or reuse both binaries; return the cache folder holding them."""
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StepError(f"step 'create the cache folder' failed: {cache} ({exc.strerror})") from exc
    apiserver, etcd = cache / "kube-apiserver", cache / "etcd"
    with locked(cache):
        need_api = force or not apiserver_ok(apiserver)
        need_etcd = force or not etcd_ok(etcd)
        if not need_api and not need_etcd:
            print(f"ftctl-kube: kube-apiserver {KUBE_VERSION} and etcd cached in {cache}")
            return cache
        for tool in ("apt-get", "dpkg", "make"):
            if shutil.which(tool) is None:
                raise StepError(f"step 'find {tool}' failed: {tool} is not on PATH")
        log_path = cache / "build.log"
        log_path.write_text("")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="ftctl-kube-build-") as tmp:
            builder = Builder(Path(tmp), log_path)
            builder.apt_update()
            if need_etcd:
                install(builder.etcd(), etcd)
            if need_api:
                install(builder.apiserver(), apiserver)
        print(f"ftctl-kube: ready in {time.monotonic() - started:.0f} s: {cache}")
    return cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    try:
        cache = ensure(force=args.force)
    except StepError as exc:
        print(f"ftctl-kube: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ftctl-kube: error: interrupted; nothing installed", file=sys.stderr)
        return 130
    print(cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
