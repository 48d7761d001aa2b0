"""Nothing indexed is ever lost: crashes at any moment, two writers at once, readers during a write,
damaged stores and state files. Each test builds its bad situation itself and then checks what a user
would: the index is whole (`verify`), every file's text is findable, and the report tells the truth."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ingest.config import IndexSettings
from ingest.errors import IndexLocked
from ingest.indexer import index_folder, open_store
from ingest.lock import WriterLock, lock_name
from ingest.state import IndexState, state_path
from ingest.verify import verify
from rag.api import RAG

TRIALS_FIRST = 6
TRIALS_UPDATE = 6


def write_folder(root: Path, n: int, version: str = "v1", start: int = 0) -> list[str]:
    """``n`` files, each with a unique token (tokNNN) and a version word, some Chinese."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(start, start + n):
        name = f"doc{i:03}.md" if i % 3 else f"zh/文档{i:03}.md"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = (f"# Topic {i}\n\nThis is file tok{i:03} in version {version}. " + "Filler words about lakes. " * 30
                + f"\n\n## 第二节\n\n检索增强生成 第{i}号文件 {version}。" + "湖泊与河流。" * 40 + "\n")
        path.write_text(body, encoding="utf-8")
        names.append(name)
    return names


def rag_index(folder: Path, db: Path, host: str, *extra: str, env: dict[str, str] | None = None,
              **popen: object) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "rag", "index", str(folder), "--db", str(db), "--host", host, "--json",
           "--batch-size", "4", *extra]
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, **popen)  # type: ignore[call-overload]


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, dict | None, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, (json.loads(out) if out.strip().startswith("{") else None), err


def assert_whole(settings: IndexSettings, files: list[str], folder: Path) -> None:
    """Store, records and postings agree; no chunk twice; every file's unique token is found."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # a subprocess rewrote the store under this process's cached client
    store = open_store(settings)
    state = IndexState.open(settings.db, settings.collection, create=False)
    try:
        report = verify(store, state, reachability=False)
        assert report.consistent, report.to_dict() | {"unreachable": len(report.unreachable)}
        spots = Counter((m["source"], m["page"], m["start"]) for _, m in store.iter_metadata())
        assert max(spots.values()) == 1, "a chunk is stored twice"
        assert sorted(state.indexed_sources()) == sorted(files)
        for name in files:
            token = "tok" + name[-6:-3]
            hits = state.lexical.search(token, 3)
            assert hits and state.lexical.search(token, 1), name
            text = (folder / name).read_text(encoding="utf-8")
            version = "v2" if "version v2" in text else "v1"
            stored = store.get([hits[0][0]])[0]
            assert stored.source == name and f"version {version}" in stored.text
    finally:
        state.close()


@pytest.fixture
def slow_server(ollama_server_factory):
    """Embedding takes a little while, so a run is long enough to be cut at random moments."""
    return ollama_server_factory(embed_ms_per_request=40)


def settings_for(db: Path, host: str) -> IndexSettings:
    return IndexSettings.resolve(host=host, db=db, batch_size=4)


# -- kill -9 at random moments ---------------------------------------------------------------


@pytest.mark.parametrize("trial", range(TRIALS_FIRST))
def test_kill_9_during_a_first_index_loses_nothing(slow_server, tmp_path, trial):
    rng = random.Random(1000 + trial)
    folder = tmp_path / "docs"
    files = write_folder(folder, 24)
    db = tmp_path / "db"
    proc = rag_index(folder, db, slow_server.url)
    time.sleep(rng.uniform(0.8, 4.0))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reaps it and closes its pipes
    code, report, err = finish(rag_index(folder, db, slow_server.url))
    assert code == 0, err
    assert report["updated"] == []  # none was indexed before: every file is "added" or (if done) "unchanged"
    assert sorted(report["added"] + report["unchanged"]) == sorted(files)
    assert_whole(settings_for(db, slow_server.url), files, folder)


@pytest.mark.parametrize("trial", range(TRIALS_UPDATE))
def test_kill_9_during_an_update_loses_nothing(slow_server, tmp_path, trial):
    rng = random.Random(2000 + trial)
    folder = tmp_path / "docs"
    files = write_folder(folder, 18)
    db = tmp_path / "db"
    code, _, err = finish(rag_index(folder, db, slow_server.url))
    assert code == 0, err
    write_folder(folder, 9, "v2")  # edit half
    new = write_folder(folder, 6, "v1", start=18)  # and add new files
    (folder / files[-1]).unlink()
    files = files[:-1] + new
    proc = rag_index(folder, db, slow_server.url)
    time.sleep(rng.uniform(0.8, 3.5))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reaps it and closes its pipes
    code, report, err = finish(rag_index(folder, db, slow_server.url))
    assert code == 0, err
    assert not set(report["updated"]) & set(new)  # never indexed before the crash: added, not updated
    assert_whole(settings_for(db, slow_server.url), files, folder)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
def test_kill_9_while_files_are_parsed_in_a_pool_leaves_no_process_behind(slow_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 40)  # past the pool's minimum
    db = tmp_path / "db"
    proc = rag_index(folder, db, slow_server.url, env={"RAG_WORKERS": "2"})
    helpers: set[int] = set()
    deadline = time.monotonic() + 30
    while len(helpers) < 3 and proc.poll() is None and time.monotonic() < deadline:  # fork server + 2 workers
        helpers = _descendants(proc.pid)
        time.sleep(0.02)
    assert len(helpers) >= 3, "the run never started its parsing workers"

    proc.send_signal(signal.SIGKILL)
    proc.wait()  # not communicate(): workers left behind would hold its output pipes open forever
    for pipe in (proc.stdout, proc.stderr):
        assert pipe is not None
        pipe.close()
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert not [pid for pid in helpers if _running(pid)], "parsing processes outlived the run they served"
    code, report, err = finish(rag_index(folder, db, slow_server.url))
    assert code == 0, err
    assert_whole(settings_for(db, slow_server.url), files, folder)


@pytest.mark.parametrize("point", ["after_store_add", "after_state_commit"])
def test_a_crash_between_commit_steps_is_repaired(ollama_server, tmp_path, point):
    folder = tmp_path / "docs"
    files = write_folder(folder, 8)
    db = tmp_path / "db"
    assert finish(rag_index(folder, db, ollama_server.url))[0] == 0
    write_folder(folder, 8, "v2")
    code, _, _ = finish(rag_index(folder, db, ollama_server.url, env={"RAG_TEST_CRASH_AT": point}))
    assert code == 137
    code, report, err = finish(rag_index(folder, db, ollama_server.url))
    assert code == 0, err
    assert_whole(settings_for(db, ollama_server.url), files, folder)


# -- one writer at a time ----------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_first(slow_server, tmp_path):
    folder = tmp_path / "docs"
    write_folder(folder, 4)
    settings = settings_for(tmp_path / "db", slow_server.url)
    index_folder(folder, settings)
    store = open_store(settings)
    with WriterLock(store, wait=0):
        code, _, err = finish(rag_index(folder, settings.db, slow_server.url, "--wait", "0.5"))
    assert code == 5
    assert f"collection 'docs' is being indexed by process {os.getpid()}" in err
    assert "wait, or stop it" in err and err.count("\n") == 1


def test_two_runs_at_once_leave_one_whole_index(slow_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 20)
    db = tmp_path / "db"
    first = rag_index(folder, db, slow_server.url, "--wait", "120")
    second = rag_index(folder, db, slow_server.url, "--wait", "120")
    (c1, r1, e1), (c2, r2, e2) = finish(first), finish(second)
    assert c1 == 0 and c2 == 0, e1 + e2
    # One embedded everything; the other waited, then found it all done.
    assert sorted([len(r1["added"]), len(r2["added"])]) == [0, len(files)]
    assert_whole(settings_for(db, slow_server.url), files, folder)


OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from ingest.store import Store
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
Store.open(Path(sys.argv[1]), "docs", create=True)
"""


def test_processes_opening_a_new_store_at_the_same_moment_all_succeed(tmp_path):
    # Chroma builds its schema on first open with no lock around it: unguarded, about one open in
    # eight failed here with "table collections already exists" or "database is locked".
    for round_ in range(4):
        db, go = tmp_path / f"db{round_}", tmp_path / f"go{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(db), str(go)], stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        time.sleep(3)  # every process has imported chromadb and waits on the go file
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors


def test_two_runs_without_waiting_one_exits_5(slow_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 20)
    db = tmp_path / "db"
    index_folder(folder / "zh", settings_for(tmp_path / "warm", slow_server.url))  # create nothing shared
    first = rag_index(folder, db, slow_server.url, "--wait", "0")
    time.sleep(0.3)
    second = rag_index(folder, db, slow_server.url, "--wait", "0")
    results = [finish(first), finish(second)]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 5], [0, 0]), results
    if codes == [0, 5]:
        assert any("is being indexed by process" in err for _, _, err in results)
    code, _, err = finish(rag_index(folder, db, slow_server.url))
    assert code == 0, err
    assert_whole(settings_for(db, slow_server.url), files, folder)


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(ollama_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 3)
    settings = settings_for(tmp_path / "db", ollama_server.url)
    index_folder(folder, settings)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = open_store(settings)
    now = time.time()
    assert store.create_marker(lock_name("docs"), {"owner": "x", "pid": dead.pid, "host": os.uname().nodename,
                                                    "since": now, "heartbeat": now})
    write_folder(folder, 1, "v2")
    report = index_folder(folder, settings)
    assert any("took over the writer lock" in w.reason and str(dead.pid) in w.reason for w in report.warnings)
    assert report.updated == [files[0]]
    assert store.read_marker(lock_name("docs")) is None  # released at the end


def test_a_writer_whose_lock_was_taken_stops_before_writing(ollama_server, tmp_path):
    settings = settings_for(tmp_path / "db", ollama_server.url)
    folder = tmp_path / "docs"
    write_folder(folder, 2)
    index_folder(folder, settings)
    lock = WriterLock(open_store(settings), wait=0)
    lock.acquire()
    lock.store.write_marker(lock.name, {"owner": "someone-else", "pid": 1, "host": "elsewhere", "since": 1.0,
                                        "heartbeat": time.time()})
    with pytest.raises(IndexLocked, match="lost the writer lock"):
        lock.check()
    lock.release()  # not ours any more: left alone
    assert lock.store.read_marker(lock.name)["owner"] == "someone-else"


def test_searches_during_an_update_see_each_file_whole(slow_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 16)
    db = tmp_path / "db"
    settings = settings_for(db, slow_server.url)
    index_folder(folder, settings)
    write_folder(folder, 16, "v2")
    proc = rag_index(folder, db, slow_server.url)
    errors: list[BaseException] = []
    seen_versions: list[set[str]] = []

    def search_loop() -> None:
        try:
            for i in range(20):
                with RAG(db=db, host=slow_server.url) as kb:
                    hits = kb.search(f"tok{i % 16:03} version", k=10, mode="bm25")
                assert hits
                for source in {h.source for h in hits}:
                    versions = {("v2" if "version v2" in h.text or "v2。" in h.text else "v1")
                                for h in hits if h.source == source}
                    seen_versions.append(versions)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    reader = threading.Thread(target=search_loop)
    reader.start()
    reader.join(timeout=240)
    code, _, err = finish(proc)
    assert code == 0, err
    assert not errors, errors
    assert len(seen_versions) >= 20
    assert all(len(v) == 1 for v in seen_versions), "a search saw two versions of one file at once"
    assert_whole(settings, files, folder)


# -- damaged stores and state files ------------------------------------------------------------


def test_a_store_truncated_to_zero_bytes_is_re_embedded_not_unchanged(ollama_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 5)
    settings = settings_for(tmp_path / "db", ollama_server.url)
    index_folder(folder, settings)
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    (settings.db / "chroma.sqlite3").write_bytes(b"")
    code, report, err = finish(rag_index(folder, settings.db, ollama_server.url))
    assert code == 0, err
    assert report["unchanged"] == [] and sorted(report["updated"] + report["added"]) == sorted(files)
    assert any("missing from the store" in w["reason"] for w in report["warnings"])
    assert_whole(settings, files, folder)


def test_rebuild_succeeds_when_chroma_cannot_open_its_database(ollama_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 3)
    settings = settings_for(tmp_path / "db", ollama_server.url)
    index_folder(folder, settings)
    (settings.db / "chroma.sqlite3").write_bytes(b"this is not a database" * 200)
    code, report, err = finish(rag_index(folder, settings.db, ollama_server.url, "--rebuild"))
    assert code == 0, err
    assert sorted(report["added"]) == sorted(files)
    assert_whole(settings, files, folder)


@pytest.mark.parametrize("garbage", [b"", b"not sqlite at all" * 50, b"SQLite format 3\x00" + b"\x01" * 500])
def test_a_damaged_state_file_is_moved_aside_and_rebuilt(ollama_server, tmp_path, garbage):
    folder = tmp_path / "docs"
    files = write_folder(folder, 4)
    settings = settings_for(tmp_path / "db", ollama_server.url)
    index_folder(folder, settings)
    path = state_path(settings.db, settings.collection)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(garbage)
    ollama_server.clear_requests()
    report = index_folder(folder, settings)
    assert sorted(report.unchanged) == sorted(files)  # rebuilt from the store: nothing re-embedded
    assert not [r for r in ollama_server.requests if r.path == "/api/embed"]
    assert_whole(settings, files, folder)


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"version": 1}', '{"files": {"doc001.md": {"size": 1}}}',
                                     '{"files": {"doc0', '{"files": []}'])
def test_a_legacy_manifest_of_the_wrong_shape_is_repaired(ollama_server, tmp_path, content):
    folder = tmp_path / "docs"
    files = write_folder(folder, 3)
    settings = settings_for(tmp_path / "db", ollama_server.url)
    index_folder(folder, settings)
    (settings.db / "docs.manifest.json").write_text(content)
    report = index_folder(folder, settings)
    assert sorted(report.unchanged + report.updated) == sorted(files)
    assert not (settings.db / "docs.manifest.json").exists()
    assert_whole(settings, files, folder)


def test_verify_reports_each_kind_of_damage_and_repair_fixes_it(ollama_server, tmp_path):
    folder = tmp_path / "docs"
    files = write_folder(folder, 4)
    kb = RAG(db=tmp_path / "db", host=ollama_server.url, batch_size=4)
    kb.index(folder)
    assert kb.verify().consistent
    store = open_store(kb.index_settings)
    victim = store.get(list(store.iter_ids())[:1])[0]
    store.delete([victim.id])  # a missing chunk
    conn = sqlite3.connect(state_path(kb.db, "docs"))
    orphan = conn.execute("SELECT id FROM docs WHERE source != ? LIMIT 1", (victim.source,)).fetchone()[0]
    conn.execute("DELETE FROM docs WHERE id = ?", (orphan,))  # a chunk no record owns
    conn.commit()
    conn.close()
    report = kb.verify()
    assert not report.consistent
    assert report.missing == [victim.id] and report.orphans == [orphan]
    assert report.store_chunks == report.manifest_chunks - 1
    code = subprocess.run([sys.executable, "-m", "rag", "status", "--db", str(kb.db), "--verify", "--json"],
                          capture_output=True, text=True)
    assert code.returncode == 5 and json.loads(code.stdout)["missing"] == [victim.id]
    assert "rag status --verify --repair" in code.stderr
    repaired = kb.verify(repair=True)
    assert repaired.repaired["orphans_deleted"] == 1 and repaired.repaired["missing_marked"] == 1
    kb.index(folder)  # re-embeds the file that lost a chunk
    assert kb.verify().consistent
    assert_whole(kb.index_settings, files, folder)


def test_verify_finds_copies_that_differ_from_the_store_and_repair_rewrites_them(ollama_server, tmp_path):
    """Searches read texts and vectors from the state's copy: a copy that is lost or no longer matches
    the store is reported, and `--repair` rewrites it from the store (nothing is re-embedded)."""
    folder = tmp_path / "docs"
    write_folder(folder, 4)
    kb = RAG(db=tmp_path / "db", host=ollama_server.url, batch_size=4)
    kb.index(folder)
    conn = sqlite3.connect(state_path(kb.db, "docs"))
    (changed_doc, changed), (lost_doc, lost) = conn.execute("SELECT doc, id FROM docs ORDER BY doc LIMIT 2").fetchall()
    conn.execute("UPDATE passages SET text = 'not what the store holds' WHERE doc = ?", (changed_doc,))
    conn.execute("DELETE FROM passages WHERE doc = ?", (lost_doc,))
    conn.commit()
    conn.close()
    report = kb.verify(reachability=False)
    assert not report.consistent and sorted(report.wrong_copies) == sorted([changed, lost])
    code = subprocess.run([sys.executable, "-m", "rag", "status", "--db", str(kb.db), "--verify"],
                          capture_output=True, text=True)
    assert code.returncode == 5 and "wrong copies     2" in code.stdout
    ollama_server.clear_requests()
    repaired = kb.verify(repair=True)
    assert repaired.consistent and repaired.repaired["copies_rewritten"] == 2
    assert not [r for r in ollama_server.requests if r.path in ("/api/embed", "/api/embeddings")]
    store = open_store(kb.index_settings)
    state = IndexState.open(kb.db, "docs")
    try:
        assert state.passages([changed])[changed].text == store.get([changed])[0].text != "not what the store holds"
    finally:
        state.close()


def test_the_index_folder_and_its_files_are_private_to_the_owner(ollama_server, tmp_path):
    folder = tmp_path / "docs"
    write_folder(folder, 2)
    settings = settings_for(tmp_path / "db", ollama_server.url)
    index_folder(folder, settings)
    mode = settings.db.stat().st_mode & 0o777
    assert mode == 0o700, oct(mode)
    for path in [settings.db / "chroma.sqlite3", state_path(settings.db, "docs")]:
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others: {oct(path.stat().st_mode)}"
    for segment in (p for p in settings.db.iterdir() if p.is_dir()):
        assert segment.stat().st_mode & 0o077 == 0, segment.name
