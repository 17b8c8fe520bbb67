"""Writing a project: all-or-nothing updates, recovery after SIGKILL, the lock.

The kill tests run the real command (``python -m nb2pipe convert``) and kill
it with SIGKILL at random instants inside the write, which the test-only hook
``NB2PIPE_TEST_SLOW_WRITE`` stretches and announces on stderr.  After every
kill the output folder must hold the old project or the new one (a committed
update that was cut short is finished by the next run), the user's own files
must be untouched, and the next normal conversion must succeed.

``NB2PIPE_KILLS=N`` runs N kills per scenario instead of the CI default.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_cli
from nb2pipe import write

KILLS = int(os.environ.get("NB2PIPE_KILLS", "15"))  # per scenario; two scenarios
SLOW = "0.01"  # seconds per write step while a test wants to kill inside the write
USER_FILES = {"notes.txt": b"my notes\n", "products/keep.bin": b"\x00product",
              "data/raw.csv": b"a,b\n1,2\n"}

VERSION_A = [
    (["parameters"], 'n = 3\nlabel = "run"'),
    (["task:load"], "data = list(range(n))"),
    (["task:clean"], "cleaned = [x for x in data if x % 2 == 0]"),
    (["task:features"], 'feats = {"sum": sum(cleaned), "label": label}'),
    (["task:train"], 'model = {"w": feats["sum"] * 2}'),
    (["task:report"], "summary = f\"{label}: {model['w']}\""),
]
VERSION_B = [
    (["parameters"], 'n = 4\nlabel = "run2"'),
    (["task:load"], "data = list(range(n))"),
    (["task:scrub"], "cleaned = [x for x in data if x % 3 == 0]"),
    (["task:features"], 'feats = {"sum": sum(cleaned), "label": label, "n": len(cleaned)}'),
    (["task:train"], 'model = {"w": feats["sum"] * 3}'),
    (["task:evaluate"], 'score = model["w"] / 2'),
]


def make_notebook(path: Path, cells: list[tuple[list[str], str]]) -> Path:
    """A minimal nbformat 4 notebook with the given (tags, source) code cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                    "display_name": "Python 3"}},
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags},
                   "execution_count": None, "outputs": [], "source": source}
                  for i, (tags, source) in enumerate(cells)]}), encoding="utf-8")
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path -> bytes)."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def generated(folder: Path) -> dict[str, bytes]:
    """The files nb2pipe owns: the tree minus the user's files, pending work and
    garbage of a finished update (recovery deletes both)."""
    return {rel: data for rel, data in tree(folder).items()
            if rel not in USER_FILES and not rel.startswith((write.WORK + "/", ".nb2pipe/trash-"))}


def add_user_files(out: Path) -> None:
    for rel, data in USER_FILES.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)


def assert_user_files_intact(out: Path) -> None:
    for rel, data in USER_FILES.items():
        assert (out / rel).read_bytes() == data, f"user file {rel} was touched"


def assert_consistent(out: Path) -> None:
    """Every file the manifest lists exists with its hash, and nothing else of ours."""
    manifest = write.read_manifest(out)
    assert manifest is not None
    for rel, recorded in manifest["files"].items():
        assert write.digest((out / rel).read_bytes()) == recorded, rel


def convert(notebook: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return run_cli("convert", str(notebook), "-o", str(out), env=env)


@dataclass(frozen=True)
class Versions:
    """One notebook path, converted once as version A and once as version B."""

    notebook: Path
    a: dict[str, bytes]
    b: dict[str, bytes]
    root: Path


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    root = tmp_path_factory.mktemp("versions")
    notebook = make_notebook(root / "nb" / "pipe.ipynb", VERSION_A)
    trees = []
    for name, cells in (("ref_a", VERSION_A), ("ref_b", VERSION_B)):
        make_notebook(notebook, cells)
        done = convert(notebook, root / name / "out")  # same depth as every run below
        assert done.returncode == 0, done.stderr
        trees.append(tree(root / name / "out"))
    a, b = trees
    assert set(a) != set(b) and any(a[k] != b[k] for k in set(a) & set(b))
    return Versions(notebook, a, b, root)


@pytest.fixture
def work(versions: Versions, tmp_path: Path) -> Path:
    """A fresh folder beside the reference outputs, so relative paths match."""
    folder = versions.root / tmp_path.name
    folder.mkdir()
    return folder


def place(files: dict[str, bytes], out: Path) -> None:
    """Put a reference project in ``out`` (the same bytes a conversion writes)."""
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)


# --- plain behaviour --------------------------------------------------------------------


def test_update_replaces_ours_and_keeps_the_users(versions: Versions, work: Path) -> None:
    out = work / "out"
    place(versions.a, out)
    add_user_files(out)
    done = convert(versions.notebook, out)
    assert done.returncode == 0, done.stderr
    assert generated(out) == versions.b
    assert_user_files_intact(out)
    assert_consistent(out)
    assert sorted(p.name for p in work.iterdir()) == ["out"]  # no lock, no staging
    assert not (out / write.WORK).exists()
    assert not (out / "pipe" / "tasks" / "clean.py").exists()  # dropped with its task


def test_unchanged_rerun_touches_nothing(versions: Versions, work: Path) -> None:
    out = work / "out"
    place(versions.b, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    time.sleep(0.01)
    assert convert(versions.notebook, out).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_edited_file_is_kept_and_named(versions: Versions, work: Path) -> None:
    out = work / "out"
    place(versions.a, out)
    edited = out / "pipe" / "tasks" / "load.py"
    edited.write_text(edited.read_text() + "# mine\n")
    done = convert(versions.notebook, out)
    assert done.returncode == 1 and "NB502" in done.stderr and "pipe/tasks/load.py" in done.stderr
    assert edited.read_text().endswith("# mine\n")
    assert generated(out) == {**versions.a, "pipe/tasks/load.py": edited.read_bytes()}


def test_edited_file_no_longer_generated_is_not_deleted(versions: Versions,
                                                        work: Path) -> None:
    out = work / "out"
    place(versions.a, out)
    edited = out / "pipe" / "tasks" / "clean.py"  # version B has no task clean
    edited.write_text(edited.read_text() + "# mine\n")
    done = convert(versions.notebook, out)
    assert done.returncode == 1 and "NB502" in done.stderr and "pipe/tasks/clean.py" in done.stderr
    done = run_cli("convert", str(versions.notebook), "-o", str(out), "--force")
    assert done.returncode == 0, done.stderr
    assert edited.read_text().endswith("# mine\n")  # --force overwrites, never deletes edits


def test_leftovers_of_a_killed_run_are_cleaned_and_not_foreign(versions: Versions,
                                                               work: Path) -> None:
    out = work / "out"
    staging = work / ".out.nb2pipe-dead1234"
    place(versions.b, staging)  # a new folder that was never renamed into place
    write.lock_path(out).write_text('{"pid": 999999999, "host": "x", "since": 0}')
    done = convert(versions.notebook, out, NB2PIPE_LOCK_TIMEOUT="2")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    stage = out / write.WORK / "stage-dead1234"  # an update that was never committed
    place({"pipe/tasks/clean.py": b"half"}, stage / "files")
    (out / write.WORK / "trash-dead1234").mkdir()
    done = convert(versions.notebook, out)
    assert done.returncode == 0, done.stderr
    assert generated(out) == versions.b and not (out / write.WORK).exists()
    assert not list((out / ".nb2pipe").glob("trash-*"))


def test_a_folder_holding_only_leftovers_is_not_foreign(versions: Versions,
                                                        work: Path) -> None:
    out = work / "out"
    (out / write.WORK / "stage-dead1234" / "files").mkdir(parents=True)
    done = convert(versions.notebook, out)
    assert done.returncode == 0, done.stderr
    assert generated(out) == versions.b


def test_committed_journal_is_rolled_forward(versions: Versions, work: Path) -> None:
    """A kill right after the commit rename: the next run finishes the update."""
    out = work / "out"
    place(versions.a, out)
    add_user_files(out)
    files = {rel: data.decode() for rel, data in versions.b.items() if rel != write.MANIFEST}
    manifest = json.loads(versions.b[write.MANIFEST])
    journal = write._journal(out, {**files, write.MANIFEST: versions.b[write.MANIFEST].decode()},
                             json.loads(versions.a[write.MANIFEST])["files"])
    commit = out / write.WORK / "commit"
    for rel in journal["put"]:
        place({rel: versions.b[rel]}, commit / "files")
    (commit / "journal.json").write_text(json.dumps(journal))
    first = sorted(journal["put"])[0]  # pretend the kill came after the first move
    os.replace(commit / "files" / first, out / first)
    with write.locked(out):
        write.recover(out)
    assert generated(out) == versions.b
    assert_user_files_intact(out)
    assert not (out / write.WORK).exists()
    assert manifest["files"] == json.loads((out / write.MANIFEST).read_text())["files"]


def test_symlink_leading_out_of_the_folder_is_refused(versions: Versions,
                                                      work: Path) -> None:
    out, elsewhere = work / "out", work / "elsewhere"
    place(versions.a, out)
    elsewhere.mkdir()
    shutil.rmtree(out / "pipe" / "tasks")
    (out / "pipe" / "tasks").symlink_to(elsewhere, target_is_directory=True)
    done = convert(versions.notebook, out)
    assert done.returncode == 1 and "NB506" in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_crafted_manifest_and_journal_cannot_reach_outside(versions: Versions,
                                                          work: Path) -> None:
    """Both live in the (version-controlled) output folder: a crafted one must not
    make nb2pipe delete or write files elsewhere."""
    out, victim = work / "out", work / "victim.txt"
    victim.write_text("precious")
    place(versions.a, out)
    manifest = json.loads(versions.a[write.MANIFEST])
    manifest["files"]["../victim.txt"] = write.digest("precious")
    manifest["files"][str(victim)] = write.digest("precious")
    (out / write.MANIFEST).write_text(json.dumps(manifest))
    commit = out / write.WORK / "commit"
    place({"files/evil.txt": b"evil", "journal.json": json.dumps({
        "version": 1, "put": {"../evil.txt": {"before": None, "after": write.digest("evil")}},
        "drop": {"../victim.txt": write.digest("precious")}}).encode()}, commit)
    done = run_cli("convert", str(versions.notebook), "-o", str(out), "--force")
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious" and not (work / "evil.txt").exists()
    assert generated(out) == versions.b


# --- the lock -----------------------------------------------------------------------------


def test_lock_is_reentrant_and_exclusive_between_threads(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("NB2PIPE_LOCK_TIMEOUT", "0.2")
    seen: list[object] = []

    def other() -> None:
        try:
            with write.locked(out):
                seen.append("acquired")
        except write.Locked as error:
            seen.append(error.diagnostic)

    with write.locked(out), write.locked(out):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(seen) == 1 and getattr(seen[0], "code", "") == "NB503"
    assert str(write.lock_path(out)) in seen[0].fix and str(os.getpid()) in seen[0].message
    assert not write.lock_path(out).exists()
    other()
    assert seen[-1] == "acquired"


def test_lock_goes_inside_when_the_parent_is_read_only(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(write.os, "access", lambda path, mode: Path(path) != tmp_path)
    assert write.lock_path(out) == out / ".nb2pipe" / "lock"
    with write.locked(out):
        assert (out / ".nb2pipe" / "lock").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert write._foreign(out) == []


@pytest.mark.parametrize("content, age, stale", [
    ('{"pid": 999999999, "host": "HOST", "since": 0}', 0, True),     # dead process
    ('{"pid": PID, "host": "HOST", "since": 0}', 0, False),          # alive (this test)
    ('{"pid": PID, "host": "HOST", "since": 0}', 3600, True),        # older than 10 min
    ('{"pid": 999999999, "host": "other-host", "since": 0}', 0, False),  # cannot tell
])
def test_lock_without_flock_recovers_stale_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 content: str, age: int, stale: bool) -> None:
    """Where flock is missing (Windows), an exclusive file with PID and age is used."""
    import socket

    monkeypatch.setattr(write, "fcntl", None)
    monkeypatch.setenv("NB2PIPE_LOCK_TIMEOUT", "0.3")
    out = tmp_path / "out"
    path = write.lock_path(out)
    path.write_text(content.replace("PID", str(os.getpid())).replace("HOST", socket.gethostname()))
    os.utime(path, (time.time() - age, time.time() - age))
    if stale:
        with write.locked(out):
            assert json.loads(path.read_text())["pid"] == os.getpid()
        assert not path.exists()
    else:
        with pytest.raises(write.Locked):
            with write.locked(out):
                pass
        assert path.exists()


def _start(notebook: Path, out: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nb2pipe", "convert", str(notebook),
                             "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env})


def _wait_for_write(process: subprocess.Popen, step: str = "write") -> bool:
    """Read stderr until the hook announces ``step``; False if it never comes."""
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith(f"nb2pipe-test: {step}"):
            return True
    return False


def test_two_conversions_at_once_one_waits(versions: Versions, work: Path) -> None:
    out = work / "out"
    first = _start(versions.notebook, out, NB2PIPE_TEST_SLOW_WRITE="0.05")
    assert _wait_for_write(first)
    second = _start(versions.notebook, out, NB2PIPE_LOCK_TIMEOUT="60")
    _, err = second.communicate(timeout=120)
    assert first.wait(timeout=120) == 0
    assert second.returncode == 0, err
    assert generated(out) == versions.b
    assert sorted(p.name for p in work.iterdir()) == ["out"]


def test_two_conversions_at_once_one_gives_up_with_nb503(versions: Versions,
                                                         work: Path) -> None:
    out = work / "out"
    place(versions.a, out)
    # a write long enough (~0.5 s a file) that the second process, even started on a
    # loaded machine, meets the lock while the first still holds it
    first = _start(versions.notebook, out, NB2PIPE_TEST_SLOW_WRITE="0.5")
    assert _wait_for_write(first)
    second = _start(versions.notebook, out, NB2PIPE_LOCK_TIMEOUT="0.3")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 1 and "NB503" in err and "nothing written" in err
    assert first.wait(timeout=120) == 0
    assert generated(out) == versions.b


# --- SIGKILL at random instants -------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """What one kill found: where it landed and what the folder held."""

    state: str   # "absent", "old", "new" or "committed" (finished by the next run)
    early: bool  # killed before the write began


def _window(versions: Versions, work: Path, update: bool) -> float:
    """How long a slowed-down write takes, from its start to its end."""
    out = work / "out"
    if update:
        place(versions.a, out)
    process = _start(versions.notebook, out, NB2PIPE_TEST_SLOW_WRITE=SLOW)
    assert _wait_for_write(process)
    start = time.monotonic()
    assert _wait_for_write(process, "done")
    took = time.monotonic() - start
    assert process.wait(timeout=120) == 0
    shutil.rmtree(out)
    return took


def _kill_once(versions: Versions, folder: Path, update: bool, window: float,
               seed: int) -> Kill:
    try:
        return _kill_and_check(versions, folder, update, window, seed)
    except AssertionError as error:
        raise AssertionError(f"kill with seed {seed} in {folder}: {error}") from error


def _kill_and_check(versions: Versions, folder: Path, update: bool, window: float,
                    seed: int) -> Kill:
    rng = random.Random(seed)
    folder.mkdir()
    out = folder / "out"
    if update:
        place(versions.a, out)
        add_user_files(out)
    early = rng.random() < 0.1
    process = _start(versions.notebook, out, NB2PIPE_TEST_SLOW_WRITE=SLOW)
    if early:
        time.sleep(rng.uniform(0, 1.0))
    else:
        assert _wait_for_write(process), "the conversion failed before writing"
        time.sleep(rng.uniform(0, window * 1.25))  # some land after the write
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    state = _classify(versions, out, update)
    if seed % 2:  # half the time recover here; otherwise the next conversion does it
        with write.locked(out):
            write.recover(out)
        expected = {"absent": {}, "old": versions.a, "new": versions.b,
                    "committed": versions.b}[state]
        assert generated(out) == expected and tree(out).keys() - USER_FILES == expected.keys()
        assert sorted(p.name for p in folder.iterdir()) == (["out"] if out.exists() else [])
    done = convert(versions.notebook, out, NB2PIPE_LOCK_TIMEOUT="5")
    assert done.returncode == 0, done.stderr
    assert tree(out).keys() - USER_FILES == versions.b.keys() and generated(out) == versions.b
    assert sorted(p.name for p in folder.iterdir()) == ["out"]
    if update:
        assert_user_files_intact(out)
    return Kill(state, early)


def _classify(versions: Versions, out: Path, update: bool) -> str:
    """The state a kill left; a mix is allowed only while a commit is pending."""
    if update:
        assert_user_files_intact(out)
    if (out / write.WORK / "commit" / "journal.json").is_file():
        return "committed"
    if not out.exists():
        assert not update
        return "absent"
    found = generated(out)
    assert found in (versions.a, versions.b), "a mix of two versions after a kill"
    if found == versions.a:
        assert update
        return "old"
    return "new"


@pytest.mark.parametrize("update", [False, True], ids=["new-folder", "update"])
def test_sigkill_at_random_points_leaves_old_or_new(versions: Versions, work: Path,
                                                    update: bool) -> None:
    window = _window(versions, work, update)
    seeds = [random.randrange(2**32) * 2 + i % 2 for i in range(KILLS)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        kills = list(pool.map(lambda pair: _kill_once(versions, Path(f"{work}-k{pair[0]}"),
                                                      update, window, pair[1]),
                              enumerate(seeds)))
    states = {s: sum(k.state == s for k in kills) for s in ("absent", "old", "new", "committed")}
    print(f"\n{len(kills)} kills ({'update' if update else 'new folder'}, write window "
          f"{window:.2f}s): {states}, {sum(k.early for k in kills)} before the write")
    assert len(kills) == KILLS
    assert sum(not k.early for k in kills) >= KILLS // 2
