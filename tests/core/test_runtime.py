"""Thread-pool defaults: set for the process only where nobody chose one, and only while they can still work."""

from __future__ import annotations

import sys

import pytest

from core.runtime import configure_threading


def test_passive_openmp_and_single_thread_blas_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delitem(sys.modules, "numpy", raising=False)
    environ: dict[str, str] = {}
    assert configure_threading(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}


def test_values_in_the_environment_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delitem(sys.modules, "numpy", raising=False)
    environ = {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_NUM_THREADS": "4"}
    assert configure_threading(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_NUM_THREADS": "4"}


def test_a_library_already_loaded_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy  # noqa: F401  (loaded: OpenBLAS has read the environment already)
    import torch  # noqa: F401

    environ: dict[str, str] = {}
    assert not configure_threading(environ)
    assert environ == {}
    monkeypatch.delitem(sys.modules, "torch")
    assert not configure_threading(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
