"""Stage 6: put the rendered files on disk, atomically and edit-safely.

* Nothing is written when anything is wrong: all checks happen first.
* A new output folder is built next to its final place and renamed into it
  in one step, so an interrupted conversion leaves nothing behind.
* An existing project is updated all-or-nothing: the complete new set of
  files is staged in ``.nb2pipe/work/stage-*`` with a journal naming every
  file to put and to drop; renaming that folder to ``.nb2pipe/work/commit``
  is the commit point.  Before it, a killed run leaves the old project (the
  staging folder is garbage); after it, the next run rolls the journal
  forward to the new project.  Each step of the roll-forward is idempotent.
* Files whose hash differs from the manifest were edited by the user: they
  are never overwritten without ``force`` (NB502); files nb2pipe did not
  write (data, products, your notes) are never touched.
* One conversion at a time per output folder: a lock file next to it
  (``.NAME.nb2pipe.lock``; ``.nb2pipe/lock`` if the parent is read-only),
  held with ``flock`` so that the kernel releases it when its owner dies,
  however it dies; without flock, a lock whose process is dead or which is
  older than 10 minutes is broken.  A waiting run gives up with NB503 after
  ``NB2PIPE_LOCK_TIMEOUT`` seconds (default 60).  The lock is re-entrant, so
  a caller can hold it across ``preflight()`` and ``write()``.
* Paths from the manifest or a journal are used only if they stay inside the
  output folder, and generated paths that a symlink leads outside are
  refused (NB506): both files may come from someone else's repository.

``docs/project-layout.md`` shows the resulting files; this docstring is the
reference for the on-disk protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from . import codes
from .errors import Nb2pipeError
from .model import Diagnostic, Location

try:  # POSIX; elsewhere the lock falls back to an exclusive file (see _Lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MANIFEST = ".nb2pipe/manifest.json"
WORK = ".nb2pipe/work"
# What may already be in an output folder without it being "foreign".
HARMLESS = frozenset({".nb2pipe", "products", ".pytest_cache", "__pycache__", ".ploomber",
                      ".DS_Store"})
LOCK_TIMEOUT = 60.0      # seconds a run waits for another one (NB2PIPE_LOCK_TIMEOUT)
STALE_AFTER = 10 * 60.0  # seconds after which an unlockable lock file is stale (fallback only)


class Locked(Nb2pipeError):
    """Another conversion holds the output folder for longer than we wait."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.format())
        self.diagnostic = diagnostic


def digest(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- checks ----------------------------------------------------------------------------


def preflight(out: Path, files: dict[str, str | bytes], force: bool) -> list[Diagnostic]:
    """Everything that would make writing unsafe, found before writing anything.

    A run killed earlier is recovered first, so that the checks see a
    consistent project rather than a half-applied one.
    """
    where = Location(str(out))
    if out.exists() and not out.is_dir():
        return [codes.make("NB107", where, detail="the output path is a file, not a folder")]
    try:
        with locked(out):
            recover(out)
            return _outside(out, files) or _foreign(out) or _edited(out, files, force)
    except Locked as error:
        return [error.diagnostic]


def _outside(out: Path, files: dict[str, str | bytes]) -> list[Diagnostic]:
    """Generated paths that would land outside ``out`` (through a symlink, say)."""
    root = out.resolve()
    bad = sorted(rel for rel in files if not _inside(root, out / rel))
    if not bad:
        return []
    return [codes.make("NB506", Location(str(out)), detail=", ".join(bad[:5]))]


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _ours(out: Path, rel: str) -> bool:
    """A path from a manifest or journal that may be touched: relative, inside ``out``.

    Both files live in the output folder, often under version control: a
    crafted one must not make nb2pipe delete or write files elsewhere.
    """
    path = Path(rel)
    return not path.is_absolute() and ".." not in path.parts and _inside(out.resolve(), out / rel)


def _foreign(out: Path) -> list[Diagnostic]:
    """A folder nb2pipe did not write (no manifest) must hold nothing that matters."""
    if not out.is_dir() or read_manifest(out) is not None:
        return []
    foreign = sorted(p.name for p in out.iterdir() if p.name not in HARMLESS)
    if not foreign:
        return []
    shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
    return [codes.make("NB501", Location(str(out)), detail=f"{out} ({shown})")]


def _edited(out: Path, files: dict[str, str | bytes], force: bool) -> list[Diagnostic]:
    """Generated files changed since the manifest, that this run would change again."""
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None or force:
        return []
    edited = []
    for path, recorded in manifest.get("files", {}).items():
        target = out / path
        if not _ours(out, path) or not target.is_file():
            continue
        now = digest(target.read_bytes())
        if now != recorded and (path not in files or digest(files[path]) != now):
            edited.append(path)
    if not edited:
        return []
    return [codes.make("NB502", Location(str(out)), detail=", ".join(sorted(edited)))]


# --- writing ---------------------------------------------------------------------------


def write(out: Path, files: dict[str, str | bytes], manifest: dict) -> list[str]:
    """Write the project; returns the paths written (relative to ``out``)."""
    files = dict(files)
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    with locked(out):
        recover(out)
        _pause("write")
        if out.exists():
            old = read_manifest(out) or {}
            _write_over(out, files, old.get("files", {}))
        else:
            _write_new(out, files)
        _pause("done")
    return sorted(files)


def _write_new(out: Path, files: dict[str, str | bytes]) -> None:
    """Build the whole project beside ``out``, then rename it into place."""
    staging = _fresh_dir(out.parent, f".{out.name}.nb2pipe-")
    try:
        for rel, text in files.items():
            _put(staging / rel, text)
            _pause()
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_over(out: Path, files: dict[str, str | bytes], previous: dict[str, str]) -> None:
    """Stage, journal, commit by one rename, then roll forward (see the module doc)."""
    journal = _journal(out, files, previous)
    if not journal["put"] and not journal["drop"]:
        return  # same bytes: touch nothing, keep mtimes
    work = out / WORK
    work.mkdir(parents=True, exist_ok=True)
    stage = _fresh_dir(work, "stage-")
    try:
        for rel in journal["put"]:
            _put(stage / "files" / rel, files[rel])
            _pause()
        _put(stage / "journal.json", json.dumps(journal, indent=1, sort_keys=True))
        os.rename(stage, work / "commit")  # the commit point
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _pause()
    _roll_forward(out, work / "commit")
    _clear_work(out)


def _journal(out: Path, files: dict[str, str | bytes], previous: dict[str, str]) -> dict:
    """What the update does: files to put (with the hash each target has now and
    will have), and old generated files to drop (if still as generated)."""
    put = {}
    for rel, text in files.items():
        before, after = _hash_of(out / rel), digest(text)
        if before != after:
            put[rel] = {"before": before, "after": after}
    drop = {rel: recorded for rel, recorded in previous.items()
            if rel not in files and _ours(out, rel) and _hash_of(out / rel) == recorded}
    return {"version": 1, "put": put, "drop": drop}


def _roll_forward(out: Path, commit: Path) -> None:
    """Apply a committed journal; safe to repeat after being killed half-way.

    A target whose content is neither what the journal saw nor the new
    content was edited since the commit: it is kept (the next conversion
    reports it as edited), like any edited file.
    """
    journal = json.loads((commit / "journal.json").read_text(encoding="utf-8"))
    for rel in sorted(journal["put"], key=lambda rel: (rel == MANIFEST, rel)):
        source, target = commit / "files" / rel, out / rel
        if not source.is_file() or not _ours(out, rel):
            continue  # moved before the kill (or a crafted journal)
        if _hash_of(target) in (journal["put"][rel]["before"], journal["put"][rel]["after"]):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        _pause()
    for rel, recorded in sorted(journal["drop"].items()):
        target = out / rel
        if _ours(out, rel) and _hash_of(target) == recorded:
            target.unlink()
            _prune(target.parent, out)
        _pause()


def _prune(folder: Path, out: Path) -> None:
    """Remove folders left empty by dropped files (never ``out`` itself)."""
    while folder != out and out in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _hash_of(path: Path) -> str | None:
    try:
        return digest(path.read_bytes()) if path.is_file() else None
    except OSError:
        return None


# --- recovery --------------------------------------------------------------------------


def recover(out: Path) -> None:
    """Finish or discard what a killed run left; call with the lock held.

    Staging folders (beside ``out`` or in ``.nb2pipe/work``) were never
    committed and are deleted; a committed journal is rolled forward.
    """
    out = Path(os.path.abspath(out))
    prefix = f".{out.name}.nb2pipe-"
    if out.parent.is_dir():
        for path in out.parent.iterdir():
            if path.name.startswith(prefix) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
    if (out / WORK / "commit" / "journal.json").is_file():
        _roll_forward(out, out / WORK / "commit")
    _clear_work(out)
    for old in (out / ".nb2pipe").glob(".staging-*"):  # left by nb2pipe <= 0.1.0
        shutil.rmtree(old, ignore_errors=True)


def _clear_work(out: Path) -> None:
    """Delete ``.nb2pipe/work``: first renamed, so no half-deleted commit remains."""
    work = out / WORK
    if work.is_dir():
        os.rename(work, out / ".nb2pipe" / f"trash-{secrets.token_hex(4)}")
    for trash in (out / ".nb2pipe").glob("trash-*"):
        shutil.rmtree(trash, ignore_errors=True)


# --- locking ---------------------------------------------------------------------------

# (lock path, thread) -> (fd, depth): re-entrant within a thread; other threads
# open their own descriptor, which flock treats as another owner.
_HELD: dict[tuple[Path, int], tuple[int, int]] = {}


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the lock of ``out`` (re-entrant, so callers may span several steps).

    Raises ``Locked`` (NB503) when another run holds it for longer than the timeout.
    """
    path = lock_path(out)
    key = (path, threading.get_ident())
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        _HELD[key] = (_acquire(out, path), 1)
    try:
        yield
    finally:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
        else:
            del _HELD[key]
            _release(path, fd)


def lock_path(out: Path) -> Path:
    """Beside the output folder, since a new one does not exist yet; inside an
    existing one whose parent is read-only (a mount point, say)."""
    out = Path(os.path.abspath(out))
    if out.is_dir() and not os.access(out.parent, os.W_OK):
        return out / ".nb2pipe" / "lock"
    return out.parent / f".{out.name}.nb2pipe.lock"


def _acquire(out: Path, path: Path) -> int:
    timeout = float(os.environ.get("NB2PIPE_LOCK_TIMEOUT", LOCK_TIMEOUT))
    deadline = time.monotonic() + timeout
    while True:
        fd = _try_lock(path)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": time.time()}).encode())
            return fd
        if time.monotonic() >= deadline:
            raise Locked(codes.make("NB503", Location(str(out)),
                                    detail=f"{out} ({_holder(path)})", other=str(path)))
        time.sleep(0.05)


def _try_lock(path: Path) -> int | None:
    """The locked file's descriptor, or None if another process holds it."""
    if fcntl is None:
        return _try_exclusive(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:  # a filesystem without flock: fall back
        os.close(fd)
        return _try_exclusive(path)
    if not _same_file(fd, path):  # its holder unlinked it while we waited: retry
        os.close(fd)
        return None
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _try_exclusive(path: Path) -> int | None:
    """Without flock: create the file exclusively; break it if its owner is gone."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if _stale(path):
            with contextlib.suppress(OSError):
                stale = path.with_name(f"{path.name}.stale-{secrets.token_hex(4)}")
                os.rename(path, stale)
                os.unlink(stale)
        return None


def _stale(path: Path) -> bool:
    """Its process is dead (same host), or it is older than STALE_AFTER."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return False
    if age > STALE_AFTER:
        return True
    pid = info.get("pid")
    return info.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but is not ours
        return True
    return True


def _holder(path: Path) -> str:
    """Who holds the lock, for the NB503 message."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%H:%M:%S", time.localtime(info["since"]))
        return f"process {info['pid']} on {info['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "process unknown"


def _release(path: Path, fd: int) -> None:
    """Unlink before closing: a waiter then finds a new file, never a dead one."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)


# --- files -----------------------------------------------------------------------------


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new folder with a random name; ``mkdir`` keeps the user's umask (``mkdtemp``
    would make the renamed project private to its owner)."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _put(path: Path, text: str | bytes) -> None:
    """Text files in UTF-8 with ``\\n`` line ends; bytes (recorded fixtures) as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
        return
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _pause(step: str = "") -> None:
    """Test-only hook: ``NB2PIPE_TEST_SLOW_WRITE=SECONDS`` sleeps between write steps
    (and announces the write on stderr) so that tests/test_write.py can kill a
    conversion inside it.  Not a user setting; unset, it costs one lookup."""
    delay = os.environ.get("NB2PIPE_TEST_SLOW_WRITE")
    if not delay:
        return
    if step:
        print(f"nb2pipe-test: {step}", file=sys.stderr, flush=True)
    time.sleep(float(delay))
