"""Writing results so nothing a user had is lost: files are replaced atomically,
never one of the run's inputs, and a closed pipe or a full disk is one line."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import CocomemError


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_file(path: Path, text: str, inputs: Iterable[Path] = ()) -> None:
    """Replace ``path`` with ``text`` atomically: a failure leaves the old file
    whole. Refuses to overwrite one of ``inputs`` (the scenario, a plugin)."""
    for source in inputs:
        if _same(path, Path(source)):
            raise CocomemError(f"--output {path} is an input of this run ({source}); "
                               f"refusing to overwrite it")
    directory = path.parent if str(path.parent) else Path(".")
    temp = None
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        else:
            os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
        temp = None
    except OSError as exc:
        raise CocomemError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def print_out(text: str) -> None:
    """``text`` and a newline on standard output, flushed; a closed pipe or a full
    disk becomes a CocomemError (one line, exit 2) instead of a traceback."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # nothing more can reach the reader; keep the interpreter's final flush quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise CocomemError("cannot write to standard output: the reader closed the pipe") \
            from None
    except OSError as exc:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        raise CocomemError(f"cannot write to standard output: {exc.strerror}") from None
