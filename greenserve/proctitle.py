"""Process titles: what ``ps`` and ``top`` show for the master and each worker."""

from __future__ import annotations


def set_proc_title(title: str) -> None:
    """``ps`` shows ``title`` when setproctitle is installed; otherwise nothing happens."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)
