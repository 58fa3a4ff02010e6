"""Atomic file writing: results appear complete under their final name or not at all."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
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
    is atomic) and is removed if the body raises. The result gets the mode ``open()`` would give
    it (0666 less the umask), also when the body replaced the temporary file by its own.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600), and writers such as safetensors' save_file
        # create their own; set the mode once the body is done.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class OutputError(OSError):
    """An output location that cannot be written: the message names the path and the reason."""


_PROBE_BYTES = 4096  # one page: the probe must need a data block, so that a full file system shows


def _reason(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.errno == errno.EROFS:
        return "read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return e.strerror or str(e)


def _under_a_file(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def check_output_dir(path, flag: str = "--out") -> Path:
    """Create the output folder ``path`` and test-write a file in it, before any work.

    A file in the way, a path under a file, a read-only or full file system raise OutputError
    naming ``flag`` and the path, so that a command fails in a second, not after the work.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: a file is in the way (an output folder is needed)")
    _writable_folder(path, flag, path)
    return path


def check_output_file(path, flag: str = "--out") -> Path:
    """Like ``check_output_dir`` for an output file: its folder is created and test-written,
    and a folder in the place of the file is refused."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path}: a folder is in the way (an output file is needed)")
    _writable_folder(path.parent, flag, path)
    return path


def _writable_folder(folder: Path, flag: str, named: Path) -> None:
    """Create ``folder`` (which holds, or is, the output ``named``) and test-write a file in it."""
    blocker = _under_a_file(named)
    if blocker is not None:
        raise OutputError(f"{flag} {named}: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        which = "" if folder == named else f" {folder}"
        raise OutputError(f"{flag} {named}: cannot create the folder{which} ({_reason(e)})") from e
    _probe(folder, flag, named)


def _probe(folder: Path, flag: str, named: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rce-jax-write-test.", dir=folder)
    except OSError as e:
        raise OutputError(f"{flag} {named}: cannot write there ({_reason(e)})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * _PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise OutputError(f"{flag} {named}: cannot write there ({_reason(e)})") from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def describe_os_error(e: OSError) -> str:
    """One line for an OSError met while writing: the path and the reason."""
    where = e.filename if e.filename is not None else ""
    return f"{where}: {_reason(e)}" if where else _reason(e)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj, *, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=True) + "\n")


def write_report(out_dir, stem: str, data, md_lines) -> str:
    """A measurement's ``<stem>.json`` (``data``) and ``<stem>.md`` (``md_lines`` joined), both
    written atomically into ``out_dir``; returns the Markdown text (for printing)."""
    text = "\n".join(md_lines)
    write_json(Path(out_dir) / f"{stem}.json", data)
    write_text(Path(out_dir) / f"{stem}.md", text + "\n")
    return text


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


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or model name (result files, figures)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "unnamed"
