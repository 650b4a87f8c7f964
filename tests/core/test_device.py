"""Precision choice: ``auto`` never picks an emulated bf16, and an explicit one is called out."""

from __future__ import annotations

import pytest
import torch

from core import device as device_module
from core.device import autocast_dtype, emulated_precision_note

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: native)
    assert autocast_dtype(CPU, "auto") == (torch.bfloat16 if native else None)


def test_explicit_bf16_on_a_cpu_without_it_gets_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: False)
    note = emulated_precision_note(CPU, autocast_dtype(CPU, "bf16"))
    assert note is not None and "emulated" in note and "fp32" in note


@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_no_note_for_fp32_or_other_dtypes(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype | None) -> None:
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: False)
    assert emulated_precision_note(CPU, dtype) is None


def test_no_note_where_bf16_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: True)
    assert emulated_precision_note(CPU, torch.bfloat16) is None


def test_no_note_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: False)
    assert emulated_precision_note(torch.device("cuda"), torch.bfloat16) is None
