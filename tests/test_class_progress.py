"""The instructor's class view (progress files of a hub's learners) and the nbgitpuller link."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dpcourse import classroom, course, exercises
from dpcourse.cli import main
from dpcourse.exercises import tracking

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dpcourse", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def homes(tmp_path, monkeypatch) -> Path:
    """Four learners' homes on a hub machine:

    - alice passed 00.fraud_rate, 00.quiz and 02.clip_fn (recorded by the course's own
      tracking code), plus a record of an exercise that no longer exists;
    - bob never passed anything (no progress file);
    - carol's file was cut off mid-write (not JSON);
    - dave's file has a record without its time stamp.
    """
    root = tmp_path / "home"
    alice = root / "alice" / ".dpcourse" / "progress.json"
    monkeypatch.setenv(tracking.ENV_VAR, str(alice))
    for lesson, name in (("00", "fraud_rate"), ("00", "quiz"), ("02", "clip_fn"), ("00", "gone")):
        tracking.record_pass(lesson, name)
    (root / "bob").mkdir()
    carol = root / "carol" / ".dpcourse" / "progress.json"
    carol.parent.mkdir(parents=True)
    carol.write_text('{"version": 1, "passed": [{"lesson": "00", "na')
    dave = root / "dave" / ".dpcourse" / "progress.json"
    dave.parent.mkdir(parents=True)
    dave.write_text(json.dumps({"version": 1, "passed": [{"lesson": "00", "name": "quiz"}]}))
    (root / "README.txt").write_text("not a home")  # files next to the homes are ignored
    return root


def _counts() -> dict[str, int]:
    return {n: len(exercises.load(n)) for n in exercises.lessons()}


def test_class_progress_json(homes, capsys):
    assert main(["course", "class-progress", "--homes", f"{homes}/*", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    view = json.loads(out)
    counts = _counts()
    assert {n: v["exercises"] for n, v in view["lessons"].items()} == counts
    rows = {row["learner"]: row for row in view["learners"]}
    assert list(rows) == ["alice", "bob", "carol", "dave"]
    alice = rows["alice"]
    assert alice["status"] == "ok" and alice["total"] == 3, "the vanished exercise does not count"
    assert alice["passed"] == {n: {"00": 2, "02": 1}.get(n, 0) for n in counts}
    assert rows["bob"]["status"] == "missing" and rows["bob"]["total"] == 0
    assert rows["carol"]["status"] == "damaged" and rows["carol"]["passed"] is None
    assert rows["dave"]["status"] == "damaged" and "passed_at" in rows["dave"]["problem"]
    assert view["lessons"]["00"]["complete"] == 0  # alice passed 2 of lesson 00's exercises


def test_class_progress_table(homes, capsys):
    assert main(["course", "class-progress", "--homes", f"{homes}/*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:2] == ["learner", "00"] and header[-2:] == ["total", "note"]
    by_learner = {line.split()[0]: line.split() for line in lines[1:]}
    counts = _counts()
    assert by_learner["(exercises)"][1:] == [*map(str, counts.values()), str(sum(counts.values()))]
    alice = by_learner["alice"]
    assert alice[1:] == [str({"00": 2, "02": 1}.get(n, 0)) for n in counts] + ["3"]
    bob = next(line for line in lines if line.startswith("bob"))
    assert bob.split()[1 : len(counts) + 2] == ["0"] * (len(counts) + 1)
    assert "no progress file" in bob
    assert by_learner["carol"][1 : len(counts) + 2] == ["?"] * (len(counts) + 1)
    assert "damaged progress file" in next(line for line in lines if line.startswith("carol"))
    assert lines[-1].startswith("4 learners")


def test_class_progress_csv_from_a_folder_of_collected_files(homes, tmp_path, capsys):
    collected = tmp_path / "collected"
    collected.mkdir()
    for learner in ("alice", "carol"):
        source = homes / learner / ".dpcourse" / "progress.json"
        (collected / f"{learner}.json").write_bytes(source.read_bytes())
    assert main(["course", "class-progress", "--dir", str(collected), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["learner"] for r in rows] == ["alice", "carol"]
    assert rows[0]["status"] == "ok" and rows[0]["00"] == "2" and rows[0]["total"] == "3"
    assert rows[1]["status"] == "damaged" and rows[1]["00"] == "" and rows[1]["problem"]


def test_an_unreadable_progress_file_is_reported_not_guessed(tmp_path):
    home = tmp_path / "erin"
    (home / ".dpcourse" / "progress.json").mkdir(parents=True)  # a folder where the file goes
    view = classroom.class_progress(classroom.progress_files_in_homes(str(tmp_path / "*")))
    (row,) = view.learners
    assert row.status == "unreadable" and row.total is None and row.problem


def test_read_progress_raises_where_the_learner_side_reader_forgives(tmp_path):
    with pytest.raises(FileNotFoundError):
        tracking.read_progress(tmp_path / "absent.json")
    damaged = tmp_path / "damaged.json"
    for text in ("[1, 2]", '{"passed": 3}', "{", '{"passed": [{"lesson": "00"}]}'):
        damaged.write_text(text)
        with pytest.raises(ValueError):
            tracking.read_progress(damaged)


@pytest.mark.parametrize(
    "args, parameter",
    [
        (["--homes", "/no/such/place/*"], "homes"),
        (["--dir", "/no/such/folder"], "dir"),
        (["--json", "--csv", "--homes", "/home/*"], "--csv"),
        (["--homes", "/home/*", "--dir", "/tmp"], "--dir"),
        (["--repo", "https://example.org/x"], "--repo"),
    ],
)
def test_class_progress_bad_input_exits_2_with_one_line(args, parameter, capsys):
    assert main(["course", "class-progress", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and parameter in err, err


def test_an_empty_collection_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"holds no <learner>\.json"):
        classroom.collected_progress_files(tmp_path)


# --------------------------------------------------------------------------- nbgitpuller
def test_nbgitpuller_link_encodes_every_value_and_opens_lesson_00(capsys):
    repo = "https://git.example.org/~teach/dp+course.git"  # "+" reads as a space if not encoded
    assert (
        main(
            [
                "course",
                "nbgitpuller-link",
                "--repo",
                repo,
                "--branch",
                "lab/2026&12",
                "--hub",
                "https://hub.example.org/",
            ]
        )
        == 0
    )
    link = capsys.readouterr().out.strip()
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "hub.example.org",
        "/hub/user-redirect/git-pull",
    )
    assert "/" not in parts.query and parts.query.count("&") == 3
    query = {k: v[0] for k, v in parse_qs(parts.query, strict_parsing=True).items()}
    first = course.lessons()[0]
    assert first.number == "00"
    assert query == {
        "repo": repo,
        "branch": "lab/2026&12",
        "targetpath": "dp+course",
        "urlpath": f"lab/tree/dp+course/{first.path.relative_to(ROOT).as_posix()}",
    }
    assert query["urlpath"] == "lab/tree/dp+course/notebooks/00_welcome.ipynb"
    assert "dp%2Bcourse.git" in link and "lab%2F2026%2612" in link


def test_nbgitpuller_link_json_and_without_a_hub(capsys):
    assert main(["course", "nbgitpuller-link", "--repo", "https://x.org/a/course/", "--json"]) == 0
    link = json.loads(capsys.readouterr().out)["link"]
    assert link.startswith("/hub/user-redirect/git-pull?repo=https%3A%2F%2Fx.org%2Fa%2Fcourse%2F")
    assert "targetpath=course&" in link and "branch=main" in link
    assert (
        main(["course", "nbgitpuller-link", "--repo", "https://x.org/a", "--targetpath", "live"])
        == 0
    )
    link = capsys.readouterr().out.strip()
    assert "targetpath=live&" in link and link.endswith(
        "urlpath=lab%2Ftree%2Flive%2Fnotebooks%2F00_welcome.ipynb"
    )


@pytest.mark.parametrize(
    "args, parameter",
    [
        ([], "--repo"),
        (["--repo", ""], "repo"),
        (["--repo", "https://x.org/a b"], "repo"),
        (["--repo", "https://x.org/a", "--branch", "two words"], "branch"),
        (["--repo", "https://x.org/a", "--hub", "hub.example.org"], "hub"),
        (["--repo", "https://x.org/a", "--csv"], "--csv"),
        (["--repo", "https://x.org/a", "--targetpath", "/etc"], "targetpath"),
    ],
)
def test_nbgitpuller_link_bad_input_exits_2_with_one_line(args, parameter, capsys):
    assert main(["course", "nbgitpuller-link", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and parameter in err, err


def test_the_command_line_reports_bad_input_without_a_traceback():
    proc = run("course", "class-progress", "--homes", "/no/such/place/*")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "homes" in proc.stderr


def test_classroom_options_are_refused_by_the_other_course_actions(capsys):
    assert main(["course", "list", "--homes", "/home/*"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--homes" in err
