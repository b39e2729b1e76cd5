"""Shared fixtures and test-session settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_progress_file(tmp_path, monkeypatch):
    """Exercise progress goes to a temporary file, never the learner's home directory."""
    monkeypatch.setenv("DPCOURSE_PROGRESS_FILE", str(tmp_path / "progress.json"))


@pytest.fixture(scope="session")
def kaggle_csv() -> Path:
    """300 rows in the public Credit Card Fraud Detection schema (random values)."""
    return FIXTURES / "creditcard_sample.csv"
