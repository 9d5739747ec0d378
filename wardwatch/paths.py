"""Where Wardwatch writes: inside the configured data directory, and nowhere else.

Everything Wardwatch writes (the store's marker, its span partitions, the probe's state file, the
maintenance lock, the demo's history marker, the recorded changes, a report written with ``-o``)
lies inside the data directory (``store.path``); reports go under its ``reports/`` folder only, so
no report can land on one of the store's own files. A path that leaves it, by ``..`` or through a
symbolic link, is refused with a clear error before anything is written. Reading is not restricted:
secrets (``${file:/run/secrets/...}``), exclusion files and the configuration itself may live
anywhere.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPORTS_DIR", "OutsideDataDirError", "check_data_dir", "inside_data_dir", "report_output"]

# What Wardwatch itself writes directly under a data directory (store, probe, maintenance, demo).
_WRITTEN_NAMES = ("store.json", "spans", "probe-state.json", ".maintenance.lock", "simulated-history.json",
                  "changes.yaml", ".changes.yaml.lock")
# The one folder of a data directory that reports are written to: nothing of the store lives there.
REPORTS_DIR = "reports"


class OutsideDataDirError(ValueError):
    """A path Wardwatch would write lies outside the data directory."""


def inside_data_dir(data_dir: Path, path: Path) -> Path:
    """``path`` (relative paths are taken from the data directory) as an absolute path inside it.

    Symbolic links are followed as far as the path exists, so a link that points out of the data
    directory is caught as surely as ``..``.

    Raises:
        OutsideDataDirError: the path resolves outside the data directory, or to the directory itself.
    """
    base = Path(data_dir).resolve()
    target = (base / Path(path).expanduser()).resolve()
    if target == base or not target.is_relative_to(base):
        raise OutsideDataDirError(
            f"{path}: outside the data directory {base} (Wardwatch writes only inside store.path)"
        )
    return target


def report_output(data_dir: Path, path: Path) -> Path:
    """Where ``report -o PATH`` writes: inside the data directory's ``reports/`` folder, never elsewhere.

    A relative path is taken from the data directory (``reports/2026-10.html``), as for every write.

    Raises:
        OutsideDataDirError: the path leaves the data directory, or lies in it but outside
            ``reports/`` (``store.json``, ``spans/...``: a report there would destroy the store).
    """
    target = inside_data_dir(data_dir, path)
    reports = Path(data_dir).resolve() / REPORTS_DIR
    if target == reports or not target.is_relative_to(reports):
        raise OutsideDataDirError(
            f"{path}: outside the reports folder {reports} (reports are written only under "
            f"{REPORTS_DIR}/ of the data directory, never over the store's files)"
        )
    return target


def check_data_dir(data_dir: Path) -> None:
    """Refuse a data directory whose own files or partitions lead out of it through symbolic links.

    Raises:
        OutsideDataDirError: one of them resolves outside the data directory.
    """
    base = Path(data_dir)
    candidates = [base / name for name in _WRITTEN_NAMES]
    spans = base / "spans"
    if spans.is_dir():
        candidates += sorted(spans.iterdir())
    for candidate in candidates:
        if candidate.is_symlink() or candidate.exists():
            inside_data_dir(base, candidate.relative_to(base))
