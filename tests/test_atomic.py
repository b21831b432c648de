"""Atomic writes (``atomic.py``): the target is replaced whole or not at all."""

import os

import numpy as np
import pytest

from twostream_das import atomic


def test_atomic_writes_replace_the_target_and_leave_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic.atomic_write_text(target, "old\n")
    atomic.atomic_write_text(target, "new\r\n")
    assert target.read_bytes() == b"new\r\n"  # written as given, no newline translation
    atomic.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["b.bin", "out.txt", "sub"]


def test_atomic_save_npy_writes_exactly_the_path(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = atomic.atomic_save_npy(tmp_path / "probs.data", arr)
    assert path == tmp_path / "probs.data" and not (tmp_path / "probs.data.npy").exists()
    np.testing.assert_array_equal(np.load(path), arr)


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.npy"
    atomic.atomic_save_npy(target, np.zeros(3))
    with pytest.raises(ValueError):
        atomic.atomic_save_npy(target, np.array([{"a": 1}], dtype=object))  # pickling refused
    np.testing.assert_array_equal(np.load(target), np.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic.atomic_write_text(tmp_path / "a.txt", "x")
        npy = atomic.atomic_save_npy(tmp_path / "a.npy", np.zeros(2))
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives
    finally:
        os.umask(old)
    for written in (path, npy):
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask == plain.stat().st_mode & 0o777


def test_atomic_create_never_replaces_a_file(tmp_path):
    path = tmp_path / "sub" / "new.yaml"
    assert atomic.atomic_create_text(path, "a: 1\n") == path and path.read_text() == "a: 1\n"
    with pytest.raises(FileExistsError):
        atomic.atomic_create_text(path, "a: 2\n")
    assert path.read_text() == "a: 1\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["new.yaml"]  # no temporary left
