from dpcourse import data, environment


def test_this_environment_passes():
    report = environment.check()
    assert report.ok, report.problems
    assert report.data_rows == data.DEFAULT_ROWS
    assert "Everything is ready" in str(report)


def test_a_wrong_version_is_reported(monkeypatch):
    monkeypatch.setattr(
        environment, "_version", lambda name: "2.16.1" if name == "tensorflow" else "x"
    )
    report = environment.check()
    assert not report.ok
    assert any(p.startswith("tensorflow 2.16.1") for p in report.problems)


def test_missing_data_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "DEFAULT_PATH", tmp_path / "gone.csv.gz")
    report = environment.check()
    assert report.data_rows is None
    assert any("make data" in p for p in report.problems)
