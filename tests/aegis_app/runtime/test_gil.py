from __future__ import annotations

import sys

import pytest

from aegis_app.runtime.gil import set_switch_interval


@pytest.fixture
def restore_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_sets_the_interpreter_switch_interval(restore_interval):
    set_switch_interval(0.5)
    assert sys.getswitchinterval() == pytest.approx(0.0005)


def test_zero_keeps_the_interpreter_default(restore_interval):
    before = sys.getswitchinterval()
    set_switch_interval(0)
    assert sys.getswitchinterval() == before
