"""Fixtures for the telemetry tests: fake RAPL trees, fake NVML, samplers that are always closed."""

from __future__ import annotations

import pytest

from envirollm_core.telemetry.sampler import Sampler
from tests.fakes import fake_pynvml
from tests.fakes.fake_sysfs import FakeRaplTree


@pytest.fixture
def sysfs_root(tmp_path, monkeypatch):
    """An empty sysfs root (no RAPL), used unless a test lays out a tree in it."""
    root = tmp_path / "sys"
    root.mkdir()
    monkeypatch.setenv("ENVIROLLM_SYSFS_ROOT", str(root))
    return root


@pytest.fixture
def rapl_tree(sysfs_root):
    tree = FakeRaplTree(sysfs_root)
    yield tree
    tree.stop()


@pytest.fixture
def no_gpu(monkeypatch):
    """NVML as on a machine without the NVIDIA driver."""
    return fake_pynvml.install(monkeypatch, [], driver=False)


@pytest.fixture
def make_sampler():
    samplers = []

    def make(interval_s: float = 0.05) -> Sampler:
        sampler = Sampler(interval_s=interval_s)
        samplers.append(sampler)
        return sampler

    yield make
    for sampler in samplers:
        sampler.close()
