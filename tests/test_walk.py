"""ingest.walk.discover: order, .ragignore, hidden names, symlinks, size limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.records import Notice, Skip
from ingest.walk import discover, human_size


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _rel(root: Path, items: list[Path | Skip | Notice]) -> list[str]:
    return [i.relative_to(root).as_posix() for i in items if isinstance(i, Path)]


def test_sorted_absolute_and_deterministic(tmp_path: Path) -> None:
    _tree(tmp_path, {"b.md": "b", "a/z.txt": "z", "a.txt": "a", "a/b/c.md": "c", "中文/说明.md": "中"})
    found = list(discover(tmp_path))
    assert all(isinstance(p, Path) and p.is_absolute() for p in found)
    rels = _rel(tmp_path, found)
    assert rels == sorted(rels) == ["a.txt", "a/b/c.md", "a/z.txt", "b.md", "中文/说明.md"]
    assert list(discover(tmp_path)) == found


def test_relative_root_gives_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, {"docs/a.md": "a"})
    monkeypatch.chdir(tmp_path)
    assert list(discover(Path("docs"))) == [tmp_path / "docs" / "a.md"]


def test_ragignore_is_honoured_silently(tmp_path: Path) -> None:
    _tree(tmp_path, {
        ".ragignore": "# comment\nbuild/\n*.log\n!keep.log\nsecret*.md\n",
        "build/out.md": "x", "app.log": "x", "keep.log": "x", "secret-plan.md": "x",
        "sub/secret2.md": "x", "sub/ok.md": "x", "readme.md": "x",
    })
    found = list(discover(tmp_path))
    assert not [i for i in found if isinstance(i, Skip)]
    assert _rel(tmp_path, found) == ["keep.log", "readme.md", "sub/ok.md"]


def test_hidden_names_skipped_unless_asked(tmp_path: Path) -> None:
    _tree(tmp_path, {".hidden/a.md": "a", ".env": "x", "b.md": "b", ".rag/chroma.sqlite3": "x",
                     ".git/HEAD": "x"})
    assert _rel(tmp_path, list(discover(tmp_path))) == ["b.md"]
    shown = _rel(tmp_path, list(discover(tmp_path, include_hidden=True)))
    # The store folder, version-control internals and .ragignore are never documents.
    assert shown == [".env", ".hidden/a.md", "b.md"]


def test_ragignore_file_itself_not_listed(tmp_path: Path) -> None:
    _tree(tmp_path, {".ragignore": "x.md\n", "y.md": "y"})
    assert _rel(tmp_path, list(discover(tmp_path, include_hidden=True))) == ["y.md"]


def test_size_limit_reports_size_and_limit(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"a" * 3000)
    (tmp_path / "small.txt").write_bytes(b"a" * 10)
    found = list(discover(tmp_path, max_file_bytes=2048))
    assert found[1] == tmp_path / "small.txt"
    skip = found[0]
    assert isinstance(skip, Skip) and skip.path == "big.txt"
    assert "3.0 KB" in skip.reason and "2.0 KB" in skip.reason  # decimal units, like every size shown


def test_human_size() -> None:
    assert human_size(12) == "12 B"
    assert human_size(50_000_000) == "50.0 MB"
    assert human_size(1536) == "1.5 KB"
    assert human_size(397_821_319) == "397.8 MB"  # decimal, as Ollama and `rag models list` show it
    assert human_size(2.5e12) == "2.5 TB"


def test_symlink_leaving_root_is_reported_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _tree(outside, {"secret.md": "s", "dir/x.md": "x"})
    root = tmp_path / "root"
    _tree(root, {"a.md": "a"})
    (root / "link.md").symlink_to(outside / "secret.md")
    (root / "linkdir").symlink_to(outside / "dir", target_is_directory=True)
    found = list(discover(root))
    assert _rel(root, found) == ["a.md"]
    skips = {s.path: s.reason for s in found if isinstance(s, Skip)}
    assert set(skips) == {"link.md", "linkdir"}
    assert all("outside" in r and "not followed" in r for r in skips.values())


def test_symlinks_inside_root_followed_without_loops(tmp_path: Path) -> None:
    _tree(tmp_path, {"real/a.md": "a"})
    (tmp_path / "real" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "alias.md").symlink_to(tmp_path / "real" / "a.md")
    (tmp_path / "broken.md").symlink_to(tmp_path / "nowhere.md")
    found = list(discover(tmp_path))
    assert _rel(tmp_path, found) == ["alias.md", "real/a.md"]
    assert [s for s in found if isinstance(s, Skip)] == [Skip("broken.md", "broken symlink")]


def test_linked_folder_inside_root_is_walked(tmp_path: Path) -> None:
    _tree(tmp_path, {"docs/a.md": "a"})
    (tmp_path / "zdocs").symlink_to(tmp_path / "docs", target_is_directory=True)
    (tmp_path / "adocs").symlink_to(tmp_path / "docs", target_is_directory=True)
    # The folder is walked under its own name, whether a link to it sorts before or after it:
    # its files keep one source name.
    assert list(discover(tmp_path)) == [tmp_path / "docs" / "a.md"]


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert list(discover(tmp_path)) == [Skip("pipe", "not a regular file (named pipe)")]


def test_unlistable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, {"locked/a.md": "a", "b.md": "b"})
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert list(discover(tmp_path)) == [tmp_path / "b.md", Skip("locked", "permission denied")]
