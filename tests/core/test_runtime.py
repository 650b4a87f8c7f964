"""The OpenMP wait policy: set for the process only where nobody chose one, and only while it can still work."""

from __future__ import annotations

import sys

import pytest

from core.runtime import configure_openmp


def test_passive_waiting_is_the_default_before_torch_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    environ: dict[str, str] = {}
    assert configure_openmp(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_a_policy_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert configure_openmp(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_nothing_changes_once_torch_is_loaded() -> None:
    import torch  # noqa: F401  (loaded: its OpenMP runtime has read the environment already)

    environ: dict[str, str] = {}
    assert not configure_openmp(environ)
    assert environ == {}
