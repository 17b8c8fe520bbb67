"""Stage 6: put the rendered files on disk, atomically and edit-safely.

* Nothing is written when anything is wrong: all checks happen first.
* A new output folder is built next to its final place and renamed into it
  in one step, so an interrupted conversion leaves nothing behind.
* In an existing project, files whose hash differs from the manifest were
  edited by the user: they are never overwritten without ``force``; files
  nb2pipe did not write (data, products, your notes) are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import codes
from .model import Diagnostic, Location

MANIFEST = ".nb2pipe/manifest.json"
# What may already be in an output folder without it being "foreign".
HARMLESS = frozenset({".nb2pipe", "products", ".pytest_cache", "__pycache__", ".ploomber",
                      ".DS_Store"})


def digest(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def preflight(out: Path, files: dict[str, str], force: bool) -> list[Diagnostic]:
    """Everything that would make writing unsafe, found before writing anything."""
    where = Location(str(out))
    if out.exists() and not out.is_dir():
        return [codes.make("NB107", where, detail="the output path is a file, not a folder")]
    if not out.exists():
        return []
    manifest = read_manifest(out)
    if manifest is None:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in HARMLESS)
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            return [codes.make("NB501", where, detail=f"{out} ({shown})")]
        return []
    edited = [path for path, recorded in manifest.get("files", {}).items()
              if (out / path).is_file() and digest((out / path).read_bytes()) != recorded
              and (path not in files or digest(files[path]) != digest((out / path).read_bytes()))]
    if edited and not force:
        return [codes.make("NB502", where, detail=", ".join(sorted(edited)))]
    return []


def write(out: Path, files: dict[str, str], manifest: dict) -> list[str]:
    """Write the project; returns the paths written (relative to ``out``)."""
    files = dict(files)
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    if not out.exists():
        _write_new(out, files)
        return sorted(files)
    old = read_manifest(out) or {}
    _write_over(out, files, old.get("files", {}))
    return sorted(files)


def _write_new(out: Path, files: dict[str, str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.nb2pipe-", dir=out.parent))
    try:
        for rel, text in files.items():
            _put(staging / rel, text)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_over(out: Path, files: dict[str, str], previous: dict[str, str]) -> None:
    """Replace our files one by one (each atomically); drop ones no longer generated."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_state_dir(out)))
    try:
        for rel, text in files.items():
            _put(staging / rel, text)
        for rel in files:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, target)
        for rel, recorded in previous.items():
            stale = out / rel
            if rel not in files and stale.is_file() and digest(stale.read_bytes()) == recorded:
                stale.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _state_dir(out: Path) -> Path:
    path = out / ".nb2pipe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
