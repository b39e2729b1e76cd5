"""Fault injection: nothing already written is lost, and every bad input gets one line.

Each test reproduces one case of issue 17: a full disk (a real size-limited tmpfs when the
machine lets us mount one, a real per-process file-size limit always, and a simulated
ENOSPC), damaged and unreadable progress files, two processes recording at once, and the
command line fed broken files and out-of-range numbers. A command-line failure must exit
with status 2 and print exactly one line on stderr, never a traceback.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import resource
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpcourse import _files, data, dpsgd
from dpcourse.cli import main
from dpcourse.exercises import ProgressWarning, tracking

SMALL = ("--rows", "2000", "--seed", "1")


def one_line_failure(capsys, *args: str) -> str:
    """Run the CLI in this process; assert exit 2 and exactly one line on stderr."""
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n"), captured.err
    assert "Traceback" not in captured.err
    return captured.err


def child(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m dpcourse ...`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "dpcourse", *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def assert_one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    """A valid 2000-row course file (gzip)."""
    path = tmp_path_factory.mktemp("data") / "small.csv.gz"
    data.save_transactions(data.generate_transactions(2000, seed=1), path)
    return path


# --------------------------------------------------------------------------- 1. full disk


def test_write_atomic_on_simulated_enospc_keeps_the_old_file(tmp_path, monkeypatch):
    """ENOSPC raised by the write's fsync (simulated): the old file is whole, no temp left."""
    target = tmp_path / "t.csv.gz"
    data.save_transactions(data.generate_transactions(500, seed=1), target)
    before = target.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        data.save_transactions(data.generate_transactions(800, seed=2), target)
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv.gz"]


def test_data_over_a_file_size_limit_exits_2_and_keeps_the_old_file(small_file, tmp_path):
    """A real write failure: the child may write at most 64 KiB per file (RLIMIT_FSIZE,
    EFBIG), far less than the new file. The old one is untouched, and --if-missing
    afterwards keeps a file that still loads."""
    target = tmp_path / "t.csv.gz"
    target.write_bytes(small_file.read_bytes())

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = child("data", "--rows", "10000", "--out", str(target), preexec_fn=limit)
    line = assert_one_line(result)
    assert "--out" in line and str(target) in line
    assert target.read_bytes() == small_file.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv.gz"]
    assert child("data", "--if-missing", "--out", str(target)).returncode == 0
    assert len(data.load_transactions(target)) == 2000


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the RLIMIT_FSIZE test covers it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Fill ``disk`` to the last byte."""
    with open(disk / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC


def test_full_tmpfs_keeps_data_and_progress(tiny_disk, small_file, monkeypatch):
    target = tiny_disk / "t.csv.gz"
    target.write_bytes(small_file.read_bytes())
    progress = tiny_disk / "progress.json"
    monkeypatch.setenv(tracking.ENV_VAR, str(progress))
    tracking.record_pass("00", "first")
    before = progress.read_bytes()
    fill(tiny_disk)

    line = assert_one_line(child("data", "--rows", "10000", "--out", str(target)))
    assert "No space left" in line and "--out" in line
    assert target.read_bytes() == small_file.read_bytes()
    with pytest.warns(ProgressWarning, match="Could not save your progress"):
        tracking.record_pass("00", "second")
    assert progress.read_bytes() == before
    leftovers = {p.name for p in tiny_disk.iterdir()}
    assert leftovers == {"t.csv.gz", "progress.json", "progress.json.lock", "filler"}


def test_write_atomic_keeps_permissions_and_links(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    _files.write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    fresh = _files.write_atomic(tmp_path / "sub" / "fresh.txt", b"x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~_files._umask()
    with pytest.raises(IsADirectoryError):
        _files.write_atomic(tmp_path, "x")


# --------------------------------------------------------------------------- 2. progress


def records(n: int) -> list[dict[str, str]]:
    return [
        {"lesson": f"{i % 10:02d}", "name": f"ex{i}", "passed_at": "2025-01-01T00:00:00+00:00"}
        for i in range(n)
    ]


def saved(path: Path) -> list[dict[str, str]]:
    return json.loads(path.read_text())["passed"]


def test_truncated_progress_file_is_kept_aside_and_its_records_recovered(tmp_path, monkeypatch):
    """27 records cut off mid-file (the issue's 27 → 1): all 27 survive, plus the new one,
    and the damaged original is kept byte for byte; one warning."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv(tracking.ENV_VAR, str(path))
    full = json.dumps({"version": 1, "passed": records(27)}, indent=1)
    damaged = full[: full.rindex('"passed_at"')]  # cut inside the 27th record
    path.write_text(damaged)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracking.record_pass("05", "new")
        tracking.record_pass("05", "newer")
    assert len(caught) == 1 and issubclass(caught[0].category, ProgressWarning)
    assert "kept as" in str(caught[0].message)
    kept = saved(path)
    assert len(kept) == 26 + 2  # the cut-off 27th record is incomplete: nothing to recover
    assert kept[:26] == records(27)[:26]
    (aside,) = tmp_path.glob("progress.json.damaged-*")
    assert aside.read_text() == damaged


def test_one_bad_record_drops_only_itself(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(tracking.ENV_VAR, str(path))
    content = records(27)
    del content[5]["passed_at"]
    path.write_text(json.dumps({"version": 1, "passed": content}))
    with pytest.warns(ProgressWarning, match="1 record"):
        tracking.record_pass("05", "new")
    kept = saved(path)
    assert len(kept) == 27 and {"lesson": "05", "name": "ex5"} not in kept
    assert [r["name"] for r in kept] == [f"ex{i}" for i in range(27) if i != 5] + ["new"]
    assert len(list(tmp_path.glob("progress.json.damaged-*"))) == 1


def test_unreadable_progress_file_is_never_written_over(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    path.mkdir()  # reading it fails with IsADirectoryError
    monkeypatch.setenv(tracking.ENV_VAR, str(path))
    with pytest.warns(ProgressWarning, match="Could not save"):
        tracking.record_pass("05", "new")
    assert path.is_dir() and list(path.iterdir()) == []


def test_read_progress_warns_once_and_never_raises(tmp_path):
    path = tmp_path / "progress.json"
    assert tracking.read_progress(path) == []
    path.write_text('{"version": 1, "passed": [{"lesson": "01", "name": "a", "passed_at": "t"}, 7')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = tracking.read_progress(path)
        second = tracking.read_progress(path)
    assert first == second == [{"lesson": "01", "name": "a", "passed_at": "t"}]
    assert len(caught) == 1 and "Could not read the progress file" in str(caught[0].message)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(ProgressWarning):
        assert tracking.read_progress(path) == []


def test_load_progress_reports_the_status_of_each_file(tmp_path):
    """The class view's reader: never raises, never warns, says what it found."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"version": 1, "passed": records(3)}))
    cut = tmp_path / "cut.json"
    cut.write_text(good.read_text()[:-30])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = {
            name: tracking.load_progress(path)
            for name, path in [
                ("good", good),
                ("cut", cut),
                ("missing", tmp_path / "no"),
                ("folder", tmp_path),
            ]
        }
    assert {k: v.status for k, v in found.items()} == {
        "good": "ok",
        "cut": "damaged",
        "missing": "missing",
        "folder": "unreadable",
    }
    expected = {f"{r['lesson']}.{r['name']}": r["passed_at"] for r in records(3)}
    assert found["good"].passed == expected
    assert len(found["cut"].records) == 2 and found["cut"].problem


RECORDER = """
import sys
from dpcourse.exercises.tracking import record_pass
for i in range(200):
    record_pass("00", f"{sys.argv[1]}{i:03d}")
"""


def test_two_processes_recording_at_once_keep_all_400(tmp_path):
    path = tmp_path / "progress.json"
    env = {**os.environ, tracking.ENV_VAR: str(path)}
    workers = [
        subprocess.Popen([sys.executable, "-c", RECORDER, tag], env=env) for tag in ("a", "b")
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    names = {r["name"] for r in saved(path)}
    assert len(saved(path)) == 400 and len(names) == 400


# --------------------------------------------------------------------------- 3. files in the CLI


def test_data_out_a_directory(capsys, tmp_path):
    line = one_line_failure(capsys, "data", *SMALL, "--out", str(tmp_path))
    assert "--out" in line and "is a directory" in line


def unwritable_directory(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores modes: use sysfs)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    (folder / "probe").unlink()
    if Path("/sys/kernel").is_dir():
        return Path("/sys/kernel")
    pytest.skip("no folder here refuses writes to this user")


def test_data_out_unwritable(capsys, tmp_path):
    folder = unwritable_directory(tmp_path)
    line = one_line_failure(capsys, "data", *SMALL, "--out", str(folder / "t.csv"))
    assert "--out" in line and "ermission denied" in line


def test_data_out_below_a_file(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_line_failure(capsys, "data", *SMALL, "--out", str(blocker / "t.csv"))
    assert "--out" in line


def test_data_out_uppercase_gz_is_gzip_and_trains(capsys, tmp_path):
    target = tmp_path / "x.CSV.GZ"
    assert main(["data", *SMALL, "--out", str(target), "--json"]) == 0
    capsys.readouterr()
    assert target.read_bytes()[:2] == b"\x1f\x8b"
    assert len(data.load_transactions(target)) == 2000


def broken_files(tmp_path: Path, small_file: Path) -> dict[str, Path]:
    raw = small_file.read_bytes()
    files = {
        "truncated gzip": raw[: len(raw) // 2],
        "not gzip, named .gz": b"this is not gzip at all\n" * 10,
        "corrupt deflate stream": raw[:20] + b"\x00" * 200 + raw[220:],
        "binary named .csv": bytes(range(256)) * 4,
        "empty": b"",
    }
    paths = {}
    for i, (name, content) in enumerate(files.items()):
        suffix = ".csv" if "csv" in name or name == "empty" else ".csv.gz"
        paths[name] = tmp_path / f"bad{i}{suffix}"
        paths[name].write_bytes(content)
    paths["a directory"] = tmp_path
    paths["missing"] = tmp_path / "missing.csv"
    return paths


@pytest.mark.parametrize("command", ["train", "audit"])
def test_broken_data_files_exit_2_naming_data(capsys, tmp_path, small_file, command):
    for name, path in broken_files(tmp_path, small_file).items():
        line = one_line_failure(capsys, command, "--data", str(path))
        assert "--data" in line and str(path) in line, (name, line)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("amount", "inf", "infinite"),
        ("amount", "1e400", "infinite"),
        ("hour", "99", "outside its range"),
        ("foreign", "-1", "outside its range"),
        ("merchant_category", "casino", "unknown value"),
    ],
)
def test_bad_values_are_named_by_column_before_training(
    capsys, tmp_path, small_file, column, value, expected
):
    frame = pd.read_csv(small_file, dtype=str)
    frame.loc[7, column] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    line = one_line_failure(capsys, "train", "--data", str(path))
    assert f"Column '{column}'" in line and expected in line and "row 7" in line


def test_all_labels_one_class_is_refused_before_training(capsys, tmp_path, small_file):
    frame = pd.read_csv(small_file)
    frame["is_fraud"] = 0
    path = tmp_path / "nofraud.csv"
    frame.to_csv(path, index=False)
    line = one_line_failure(capsys, "train", "--data", str(path))
    assert "is_fraud" in line and "both classes" in line


def test_load_transactions_sees_a_changed_file(tmp_path):
    path = tmp_path / "t.csv"
    data.save_transactions(data.generate_transactions(300, seed=1), path)
    assert len(data.load_transactions(path)) == 300
    data.save_transactions(data.generate_transactions(400, seed=1), path)
    assert len(data.load_transactions(path)) == 400


# --------------------------------------------------------------------------- 4. numbers


MNIST = ("--examples", "60000", "--batch-size", "256", "--delta", "1e-5")


@pytest.mark.parametrize("sigma", ["1e-300", "1e300", "0.01", "1000"])
def test_sigma_outside_the_accounted_range(capsys, sigma):
    args = ("--noise-multiplier", sigma)
    line = one_line_failure(capsys, "epsilon", *MNIST, "--epochs", "60", *args)
    assert "--noise-multiplier" in line and "between 0.1 and 100" in line
    line = one_line_failure(capsys, "train", *args)
    assert "--noise-multiplier" in line


@pytest.mark.parametrize("sigma", [1e-300, 1e300, 1e6])
def test_library_refuses_sigma_the_accountants_cannot_handle(sigma):
    from dpcourse import accounting

    with pytest.raises(ValueError, match="noise_multiplier"):
        accounting.compute_epsilon(60000, 256, sigma, 60, 1e-5)


@pytest.mark.parametrize(
    "args",
    [
        ("epsilon", *MNIST, "--noise-multiplier", "1.1", "--epochs", "9223372036854775808"),
        ("epsilon", *MNIST, "--noise-multiplier", "1.1", "--epochs", "1000001"),
        ("train", "--epochs", "9223372036854775808"),
        (
            *("epsilon", "--examples", "9223372036854775808", "--batch-size", "1"),
            *("--epochs", "1", "--noise-multiplier", "1", "--delta", "1e-20"),
        ),
    ],
)
def test_counts_beyond_their_maximum(capsys, args):
    line = one_line_failure(capsys, *args)
    assert "expected at most" in line


def test_rows_beyond_the_maximum(capsys, tmp_path):
    line = one_line_failure(
        capsys, "data", "--rows", "99999999999999", "--out", str(tmp_path / "x")
    )
    assert "--rows" in line and "2,000,000" in line
    assert not (tmp_path / "x").exists()


def test_pld_refuses_more_compositions_than_its_bound_at_once(capsys):
    started = time.perf_counter()
    line = one_line_failure(
        capsys,
        "epsilon",
        *MNIST,
        "--noise-multiplier",
        "1.1",
        "--epochs",
        "1000000",
        "--accountant",
        "pld",
    )
    assert "MAX_PLD_COMPOSITIONS" in line and "rdp" in line
    assert time.perf_counter() - started < 10


def test_data_seed_minus_one_names_seed(capsys, tmp_path):
    line = one_line_failure(capsys, "data", "--seed", "-1", "--out", str(tmp_path / "x.csv"))
    assert "--seed" in line


TRAIN_SEED = """
import sys, time
started = time.perf_counter()
from dpcourse.cli import main
status = main(["train", "--seed", "-1"])
print(status, "tensorflow" in sys.modules, time.perf_counter() - started)
"""


def test_train_seed_minus_one_is_refused_before_tensorflow_loads():
    result = subprocess.run(
        [sys.executable, "-c", TRAIN_SEED], capture_output=True, text=True, timeout=120
    )
    status, tensorflow_loaded, seconds = result.stdout.split()
    assert status == "2" and tensorflow_loaded == "False"
    assert "--seed" in result.stderr and result.stderr.count("\n") == 1
    assert float(seconds) < 1.0


# --------------------------------------------------------------------------- 5. clipping


def test_clip_gradients_of_huge_and_tiny_rows():
    clipped = dpsgd.clip_gradients([[1e200, 1e200], [3e-200, 4e-200]], 1.0)
    np.testing.assert_allclose(clipped[0], [2**-0.5, 2**-0.5], rtol=1e-12)
    np.testing.assert_array_equal(clipped[1], [3e-200, 4e-200])  # norm <= C: unchanged


def test_clip_gradients_refuses_complex_gradients():
    with pytest.raises(ValueError, match="must be real"):
        dpsgd.clip_gradients(np.array([[1 + 2j, 0]]), 1.0)


def test_gzip_reference_still_reads_the_shipped_data():
    """The content sniffing reads the committed file exactly as before."""
    with gzip.open(data.DEFAULT_PATH, "rt") as handle:
        header = handle.readline().strip().split(",")
    assert list(data.load_transactions().columns) == header


def test_data_if_missing_refuses_a_damaged_existing_file(capsys, tmp_path, small_file):
    target = tmp_path / "t.csv.gz"
    raw = small_file.read_bytes()
    target.write_bytes(raw[: len(raw) // 2])
    line = one_line_failure(capsys, "data", "--if-missing", "--out", str(target))
    assert "--out" in line and "not a usable data file" in line
    assert target.read_bytes() == raw[: len(raw) // 2]


@pytest.mark.slow  # imports TensorFlow
def test_train_refuses_a_schedule_that_cannot_fit_in_memory(capsys, small_file):
    """10**6 epochs would draw a schedule of billions of entries (memory grows until the
    machine swaps); refused before anything is drawn."""
    line = one_line_failure(
        capsys, "train", "--data", str(small_file), "--batch-size", "100", "--epochs", "1000000"
    )
    assert "MAX_SCHEDULE_ENTRIES" in line and "epochs" in line


def test_course_outputs_below_a_file_exit_2_naming_out(capsys, tmp_path):
    action = "export-nbgrader"
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_line_failure(capsys, "course", action, "--out", str(blocker / "edition"))
    assert "--out" in line and "writable folder" in line
    assert blocker.read_text() == ""


def test_instructor_edition_is_written_atomically(tmp_path, monkeypatch):
    """A failing write leaves the previous edition's notebook whole (simulated ENOSPC)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import course_build

    written = course_build.build_instructor_edition(tmp_path)
    before = written[0].read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", full)
    with pytest.raises(OSError):
        course_build.build_instructor_edition(tmp_path)
    assert written[0].read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
