"""Atomic file writing: results appear complete under their final name or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


# Read once, at import (one thread): os.umask can only be read by setting it, and doing that
# per write would briefly give files created by other threads (orbax's async saves) mode 0666.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the destination folder (same file system, so ``os.replace``
    is atomic) and is removed if the body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes the file private (0600); give it what open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj, *, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=True) + "\n")


def read_json_files(paths) -> list[tuple[Path, object]]:
    """``[(file, parsed JSON)]`` for files and folders (the ``*.json`` directly inside a folder,
    sorted by name), in the order given; a missing path, an empty folder or a file that is not
    JSON raises an error naming it."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                raise ValueError(f"{path}: folder holds no .json files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    out = []
    for f in files:
        try:
            out.append((f, json.loads(f.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{f}: not JSON ({e})") from e
    return out
