"""What a JupyterHub does for each learner before their server starts (hub/jupyterhub_config.py).

:func:`prepare_home` is the spawner's ``pre_spawn_hook`` on one machine. It runs in the
hub (as root) and

1. makes the learner's home private (mode 0700: no other learner can list or read it —
   Debian's ``useradd`` creates homes 0755 unless ``HOME_MODE`` says otherwise);
2. copies the course notebooks into ``~/dpcourse`` on the first start only, owned by the
   learner, so that learners edit their own copies and a later start never overwrites
   their work. Progress files go to ``~/.dpcourse/progress.json`` (dpcourse.exercises).

On Kubernetes the image holds the course in ``/srv/dpcourse`` and ``hub/values.yaml``'s
``postStart`` hook does the same copy inside the learner's container.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: The learner's copy of the course, relative to their home.
COURSE_FOLDER = "dpcourse"
HOME_MODE = 0o700


def make_home_private(home: Path) -> None:
    """Set ``home`` to mode 0700 (owner only). Raises ``FileNotFoundError`` naming the
    home and the fix if it does not exist."""
    home = Path(home)
    if not home.is_dir():
        raise FileNotFoundError(
            f"The learner's home {home} does not exist: create the account with "
            "`useradd --create-home` (see instructor/README.md, Deployment)."
        )
    if stat.S_IMODE(home.stat().st_mode) != HOME_MODE:
        home.chmod(HOME_MODE)


def copy_course(home: Path, uid: int, gid: int, source: Path = NOTEBOOKS) -> bool:
    """Copy ``source`` (the lessons) to ``home/dpcourse`` owned by ``uid:gid``, unless that
    folder already exists. Returns True if it copied. Checkpoints and caches are skipped.
    """
    target = Path(home) / COURSE_FOLDER
    if target.exists():
        return False
    staging = Path(home) / f".{COURSE_FOLDER}.copying"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(
        source, staging, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    )
    for directory, folders, files in os.walk(staging):
        os.chown(directory, uid, gid)
        for name in folders + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)
    staging.rename(target)  # atomic: a half-copied course is never taken for a finished one
    return True


def prepare_home(spawner) -> None:
    """JupyterHub ``pre_spawn_hook``: private home and the course copied on first start."""
    account = pwd.getpwnam(spawner.user.name)
    home = Path(account.pw_dir)
    make_home_private(home)
    if copy_course(home, account.pw_uid, account.pw_gid):
        spawner.log.info("Copied the course into %s/%s", home, COURSE_FOLDER)
