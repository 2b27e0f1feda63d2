"""``--user`` and ``--group``: names to ids, and the switch a worker makes to them.

Standard library only (the master resolves the names before binding, so a
typo stops it at once); the POSIX-only modules are imported on use, so
single-process mode on Windows can import this module.
"""

from __future__ import annotations

import os

from greenserve.errors import BootError


def resolve_ids(user: str, group: str) -> tuple[int | None, int | None]:
    """``--user``/``--group`` names or numbers -> (uid, gid). POSIX only."""
    uid = gid = None
    if user:
        import pwd

        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise BootError(f"--user {user}: no such user") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        import grp

        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise BootError(f"--group {group}: no such group") from None
    return uid, gid


def will_change(uid: int | None, gid: int | None) -> bool:
    """Whether :func:`drop_privileges` would change this process's user or group."""
    return (uid is not None and uid != os.getuid()) or (gid is not None and gid != os.getgid())


def drop_privileges(uid: int | None, gid: int | None, initgroups: bool = False) -> None:
    """Switch to ``uid``/``gid``; with ``initgroups``, keep every group the user is a member of.

    Without it the supplementary groups are only ``gid``: the workers must
    not keep the master's (root's) groups.
    """
    if initgroups and uid is not None:
        import pwd

        name = pwd.getpwuid(uid).pw_name
        os.initgroups(name, os.getgid() if gid is None else gid)
        if gid is not None and gid != os.getgid():
            os.setgid(gid)
    elif gid is not None and gid != os.getgid():
        os.setgroups([gid])
        os.setgid(gid)
    if uid is not None and uid != os.getuid():
        os.setuid(uid)
