"""The hub's pre-spawn hook: private homes and the course copied on the first start."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest

from dpcourse import learner_home


def _ids() -> tuple[int, int]:
    return os.getuid(), os.getgid()


def test_copy_course_copies_once_and_never_overwrites(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert learner_home.copy_course(home, *_ids()) is True
    copy = home / learner_home.COURSE_FOLDER
    lessons = sorted(p.name for p in learner_home.NOTEBOOKS.glob("*.ipynb"))
    assert sorted(p.name for p in copy.glob("*.ipynb")) == lessons
    (copy / "00_welcome.ipynb").write_text("the learner's own work")
    assert learner_home.copy_course(home, *_ids()) is False
    assert (copy / "00_welcome.ipynb").read_text() == "the learner's own work"
    assert not list(home.glob(".*copying"))


def test_copy_course_skips_checkpoints(tmp_path):
    source = tmp_path / "lessons"
    (source / ".ipynb_checkpoints").mkdir(parents=True)
    (source / "00_x.ipynb").write_text("{}")
    (source / ".ipynb_checkpoints" / "00_x-checkpoint.ipynb").write_text("{}")
    home = tmp_path / "home"
    home.mkdir()
    learner_home.copy_course(home, *_ids(), source=source)
    assert [p.name for p in (home / "dpcourse").iterdir()] == ["00_x.ipynb"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another account needs root")
def test_copy_course_gives_the_files_to_the_learner(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    learner_home.copy_course(home, 12345, 23456)
    for path in [home / "dpcourse", *(home / "dpcourse").rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (12345, 23456), path


def test_make_home_private_sets_0700(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    learner_home.make_home_private(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_missing_home_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="useradd --create-home"):
        learner_home.make_home_private(tmp_path / "nobody")


def test_prepare_home_uses_the_accounts_home(tmp_path, monkeypatch):
    home = tmp_path / "learner"
    home.mkdir(mode=0o755)
    account = SimpleNamespace(pw_dir=str(home), pw_uid=os.getuid(), pw_gid=os.getgid())
    monkeypatch.setattr(learner_home.pwd, "getpwnam", lambda name: account)
    logged = []
    spawner = SimpleNamespace(
        user=SimpleNamespace(name="learner"),
        log=SimpleNamespace(info=lambda *args: logged.append(args)),
    )
    learner_home.prepare_home(spawner)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "dpcourse" / "00_welcome.ipynb").is_file() and logged
