"""Tests for minigrad.serialization: safetensors save/load, corrupt files, atomic writes."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from minigrad import serialization as ser
from minigrad.serialization import (
    atomic_write_bytes,
    atomic_write_text,
    load,
    load_metadata,
    save,
)


class FakeTensor:
    """Stands in for minigrad.Tensor: anything with a `.data` ndarray saves like the array."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data


def leftovers(directory) -> list[str]:
    """Names of temporary files an atomic write may have left in `directory`."""
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def write_raw(path, header: dict | bytes, buffer: bytes = b"", length: int | None = None) -> None:
    """Write a hand-made safetensors-like file (header JSON or bytes, then buffer)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + raw + buffer)


# ---------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------

ROUND_TRIP_ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "f64": np.linspace(-1, 1, 5, dtype=np.float64),
    "f16": np.array([0.5, -2.0, 65504.0], dtype=np.float16),
    "i64": np.array([[-(2**62), 0, 2**62]], dtype=np.int64),
    "i32": np.array([-7, 7], dtype=np.int32),
    "i8": np.array([-128, 127], dtype=np.int8),
    "u8": np.array([0, 255], dtype=np.uint8),
    "bool": np.array([[True, False], [False, True]]),
    "scalar": np.array(3.25, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "empty_middle": np.zeros((2, 0, 3), dtype=np.int64),
}


def test_round_trip_preserves_values_dtypes_and_shapes(tmp_path):
    path = tmp_path / "t.safetensors"
    save(ROUND_TRIP_ARRAYS, path)
    loaded = load(path)
    assert set(loaded) == set(ROUND_TRIP_ARRAYS)
    for name, expected in ROUND_TRIP_ARRAYS.items():
        got = loaded[name]
        assert isinstance(got, np.ndarray)
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected)


def test_zero_dim_stays_zero_dim(tmp_path):
    path = tmp_path / "s.safetensors"
    save({"s": np.array(1.5)}, path)
    assert load(path)["s"].shape == ()


def test_loaded_arrays_are_writable_and_independent(tmp_path):
    path = tmp_path / "w.safetensors"
    save({"w": np.ones(3, dtype=np.float32)}, path)
    w = load(path)["w"]
    assert w.flags.writeable and w.flags.c_contiguous
    w += 1  # in-place parameter updates must work on loaded weights
    np.testing.assert_array_equal(load(path)["w"], np.ones(3, dtype=np.float32))


def test_tensor_like_objects_save_their_data(tmp_path):
    path = tmp_path / "m.safetensors"
    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    save({"w": FakeTensor(w), "b": FakeTensor(np.zeros(3, np.float32))}, path)
    loaded = load(path)
    np.testing.assert_array_equal(loaded["w"], w)
    np.testing.assert_array_equal(loaded["b"], np.zeros(3, np.float32))


def test_non_contiguous_and_big_endian_arrays(tmp_path):
    path = tmp_path / "nc.safetensors"
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    views = {
        "transposed": base.T,
        "strided": base[::2, 1::3],
        "reversed": base[::-1],
        "big_endian": np.arange(5, dtype=">i4"),
    }
    save(views, path)
    loaded = load(path)
    for name, view in views.items():
        np.testing.assert_array_equal(loaded[name], view)
        assert loaded[name].shape == view.shape
    assert loaded["big_endian"].dtype == np.dtype("int32")


def test_empty_dict_round_trips(tmp_path):
    path = tmp_path / "none.safetensors"
    save({}, path)
    assert load(path) == {}
    assert load_metadata(path) == {}


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "meta.safetensors"
    meta = {"iter": "100", "config": json.dumps({"n_layer": 2}), "note": "naïve ✓", "": ""}
    save({"x": np.zeros(2, np.float32)}, path, metadata=meta)
    assert load_metadata(path) == meta
    assert set(load(path)) == {"x"}  # metadata is not returned as a tensor


def test_no_metadata_gives_empty_dict(tmp_path):
    path = tmp_path / "plain.safetensors"
    save({"x": np.zeros(2, np.float32)}, path)
    assert load_metadata(path) == {}


def test_save_overwrites_existing_file(tmp_path):
    path = tmp_path / "o.safetensors"
    save({"a": np.zeros(100, np.float64)}, path)
    save({"b": np.ones(2, np.int64)}, path)
    loaded = load(path)
    assert list(loaded) == ["b"]
    np.testing.assert_array_equal(loaded["b"], [1, 1])
    assert leftovers(tmp_path) == []


def test_str_path_works(tmp_path):
    path = str(tmp_path / "s.safetensors")
    save({"a": np.arange(3)}, path)
    np.testing.assert_array_equal(load(path)["a"], np.arange(3))


# ---------------------------------------------------------------------------------------
# PyTorch interoperability
# ---------------------------------------------------------------------------------------


def test_pytorch_reads_our_file(tmp_path):
    import torch
    from safetensors.torch import load_file

    path = tmp_path / "ours.safetensors"
    arrays = ROUND_TRIP_ARRAYS
    save(arrays, path, metadata={"format": "pt"})
    loaded = load_file(str(path))
    assert set(loaded) == set(arrays)
    for name, expected in arrays.items():
        got = loaded[name]
        assert isinstance(got, torch.Tensor)
        assert tuple(got.shape) == expected.shape, name
        np.testing.assert_array_equal(got.numpy(), expected)


def test_we_read_pytorch_file(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "theirs.safetensors"
    tensors = {
        "transformer.wte.weight": torch.randn(5, 3),
        "lm_head.bias": torch.arange(4, dtype=torch.int64),
        "mask": torch.tensor([True, False]),
        "h": torch.randn(2, 2, dtype=torch.float64),
        "half": torch.tensor([1.5, -3.0], dtype=torch.float16),
    }
    save_file(tensors, str(path), metadata={"source": "torch"})
    loaded = load(path)
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        np.testing.assert_array_equal(loaded[name], t.numpy())
        assert loaded[name].dtype == t.numpy().dtype
    assert load_metadata(path) == {"source": "torch"}


# ---------------------------------------------------------------------------------------
# Bad arguments to save
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tensors, key",
    [
        ({1: np.zeros(2)}, "1"),
        ({"weights": [1.0, 2.0]}, "weights"),
        ({"weights": 3.0}, "weights"),
        ({"obj": np.array([object()], dtype=object)}, "obj"),
        ({"cplx": np.zeros(2, np.complex64)}, "cplx"),
        ({"text": np.array(["a", "b"])}, "text"),
        ({"u32": np.zeros(2, np.uint32)}, "u32"),
        ({"fake": FakeTensor([1, 2])}, "fake"),  # .data that is not an ndarray
    ],
)
def test_save_bad_tensor_raises_type_error_naming_key(tmp_path, tensors, key):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(TypeError) as info:
        save(tensors, path)
    assert key in str(info.value)
    assert not path.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "metadata, key",
    [
        ({"step": 10}, "step"),
        ({"config": {"a": "b"}}, "config"),
        ({5: "five"}, "5"),
    ],
)
def test_save_bad_metadata_raises_type_error_naming_key(tmp_path, metadata, key):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(TypeError) as info:
        save({"x": np.zeros(1)}, path, metadata=metadata)
    assert key in str(info.value)
    assert not path.exists()


def test_save_rejects_non_dict(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        save([np.zeros(1)], tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="metadata"):
        save({"x": np.zeros(1)}, tmp_path / "x.safetensors", metadata=["a"])


def test_save_rejects_reserved_name(tmp_path):
    with pytest.raises(ValueError, match="__metadata__"):
        save({"__metadata__": np.zeros(1)}, tmp_path / "x.safetensors")


def test_bad_save_leaves_previous_file(tmp_path):
    path = tmp_path / "keep.safetensors"
    save({"a": np.arange(3)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save({"a": np.arange(3), "b": "oops"}, path)
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------


def test_failed_replace_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"a": np.arange(4, dtype=np.float32)}, path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(ser.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        save({"a": np.zeros(1000, dtype=np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]
    np.testing.assert_array_equal(load(path)["a"], np.arange(4, dtype=np.float32))


def test_failure_mid_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"a": np.arange(4)}, path)
    before = path.read_bytes()

    def fail_fsync(fd):
        raise OSError("fsync failed")

    # The temp file has been written (but not renamed) when fsync fails.
    monkeypatch.setattr(ser.os, "fsync", fail_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        save({"a": np.zeros(10)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_serializer_failure_keeps_old_file(tmp_path, monkeypatch):
    import safetensors.numpy

    path = tmp_path / "ckpt.safetensors"
    save({"a": np.arange(4)}, path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("serializer crashed")

    monkeypatch.setattr(safetensors.numpy, "save", broken)
    with pytest.raises(RuntimeError, match="serializer crashed"):
        save({"a": np.zeros(10)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_keyboard_interrupt_during_write_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "log.txt"
    atomic_write_text(path, "old\n")

    def interrupt(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(ser.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_atomic_write_bytes_and_text(tmp_path):
    path = tmp_path / "config.json"
    atomic_write_text(path, '{"a": 1}\n')
    assert path.read_bytes() == b'{"a": 1}\n'  # "\n" is not translated on any platform
    atomic_write_bytes(path, b"\x00\x01\x02")
    assert path.read_bytes() == b"\x00\x01\x02"
    atomic_write_text(tmp_path / "u.txt", "héllo ✓")
    assert (tmp_path / "u.txt").read_text(encoding="utf-8") == "héllo ✓"
    assert leftovers(tmp_path) == []


def test_atomic_write_rejects_wrong_types(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "a", "not bytes")
    with pytest.raises(TypeError):
        atomic_write_text(tmp_path / "a", b"not text")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_uses_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(umask)
    # Not 0o600 as a tempfile.mkstemp file would be: others may read a checkpoint.
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_missing_parent_directory_names_path(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "model.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        save({"a": np.zeros(1)}, path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(path, "x")


def test_permission_error_names_target_path(tmp_path, monkeypatch):
    # Simulated, so that it also runs as root (where chmod does not lock a directory).
    path = tmp_path / "model.safetensors"

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", args[0])

    monkeypatch.setattr(ser.os, "open", denied)
    with pytest.raises(PermissionError) as info:
        save({"a": np.zeros(1)}, path)
    monkeypatch.undo()
    assert str(path) in str(info.value)
    assert not path.exists()


# ---------------------------------------------------------------------------------------
# Corrupt and foreign files
# ---------------------------------------------------------------------------------------


def _valid_bytes() -> bytes:
    import safetensors.numpy

    return safetensors.numpy.save(
        {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(3, dtype=np.int64)},
        metadata={"k": "v"},
    )


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"not really")
    return buf.getvalue()


def _with_header(header: dict, buffer: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + buffer


def _flip_length_byte(data: bytes, index: int) -> bytes:
    data = bytearray(data)
    data[index] ^= 0x40
    return bytes(data)


VALID = _valid_bytes()
HEADER_LEN = int.from_bytes(VALID[:8], "little")
F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

CORRUPT_FILES = {
    "empty": (b"", "empty"),
    "three_bytes": (b"\x01\x02\x03", "shorter than the 8-byte"),
    "only_length": (VALID[:8], "exceeds file size"),
    "truncated_in_header": (VALID[: 8 + HEADER_LEN // 2], "exceeds file size"),
    "truncated_after_header": (VALID[: 8 + HEADER_LEN], "past the end"),
    "truncated_in_data": (VALID[:-5], "past the end"),
    "one_byte_short": (VALID[:-1], "past the end"),
    "trailing_garbage": (VALID + b"extra", "cover"),
    "length_low_byte_flipped": (_flip_length_byte(VALID, 0), "not a safetensors file"),
    "length_high_byte_flipped": (_flip_length_byte(VALID, 7), "exceeds file size"),
    "length_zero": (b"\x00" * 8 + VALID[8:], "not valid JSON"),
    "garbage_json": (struct.pack("<Q", 10) + b"{not json}", "not valid JSON"),
    "not_utf8": (struct.pack("<Q", 4) + b"\xff\xfe{}", "not UTF-8"),
    "json_list": (_with_header([1, 2], b""), "not an object"),  # type: ignore[arg-type]
    "pickle": (pickle.dumps({"w": [1.0, 2.0, 3.0]}), "pickle"),
    "pickle_v2": (pickle.dumps({"w": 1}, protocol=2), "not a safetensors file"),
    "zip": (_zip_bytes(), "zip"),
    "json_text": (b'{"n_layer": 2, "n_head": 4}', "JSON"),
    "npy": (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False}", ".npy"),
    "random_bytes": (np.random.default_rng(0).bytes(4096), "not a safetensors file"),
    "offsets_outside": (
        _with_header(
            {"x": {"dtype": "F32", "shape": [2000], "data_offsets": [0, 8000]}}, b"\0" * 8
        ),
        "past the end",
    ),
    "offsets_past_end": (
        _with_header({"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, b"\0" * 8),
        "past the end",
    ),
    "offsets_overlap": (
        _with_header({"x": F32, "y": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12),
        "overlaps",
    ),
    "offsets_gap": (_with_header({"x": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12), "gap"),
    "offsets_reversed": (
        _with_header({"x": {**F32, "data_offsets": [8, 0]}}, b"\0" * 8),
        "data_offsets",
    ),
    "offsets_negative": (
        _with_header({"x": {**F32, "data_offsets": [-8, 0]}}, b"\0" * 8),
        "data_offsets",
    ),
    "size_mismatch": (_with_header({"x": {**F32, "shape": [3]}}, b"\0" * 8), "needs 12 bytes"),
    "bad_dtype": (_with_header({"x": {**F32, "dtype": "F128"}}, b"\0" * 8), "dtype"),
    "bad_shape": (_with_header({"x": {**F32, "shape": [-2]}}, b"\0" * 8), "shape"),
    "bool_shape": (_with_header({"x": {**F32, "shape": [True, 2]}}, b"\0" * 8), "shape"),
    "missing_field": (
        _with_header({"x": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
        "data_offsets",
    ),
    "entry_not_object": (_with_header({"x": [1, 2]}, b""), "not a JSON object"),
    "bad_metadata": (_with_header({"__metadata__": {"a": 1}}, b""), "__metadata__"),
    "bool_bytes": (
        _with_header({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x07"),
        "0 and 1",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_FILES))
def test_corrupt_file_raises_value_error_naming_path(tmp_path, case):
    content, reason = CORRUPT_FILES[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message
    assert reason in message, message


@pytest.mark.parametrize("case", sorted(c for c in CORRUPT_FILES if c != "bool_bytes"))
def test_load_metadata_refuses_corrupt_files_too(tmp_path, case):
    content, _ = CORRUPT_FILES[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_metadata(path)


def test_specific_message_for_huge_header_length(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 1234567) + b"x" * 91)
    with pytest.raises(ValueError) as info:
        load(path)
    assert str(info.value) == (
        f"{path}: not a safetensors file: header length 1234567 exceeds file size 99"
    )


def test_header_over_limit_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.safetensors"
    write_raw(path, b"{}" + b" " * 62)
    monkeypatch.setattr(ser, "_MAX_HEADER_BYTES", 10)
    with pytest.raises(ValueError, match="limit"):
        load(path)


def test_library_errors_are_wrapped(tmp_path, monkeypatch):
    import safetensors.numpy

    path = tmp_path / "ok.safetensors"
    save({"a": np.zeros(2)}, path)

    def broken(data):
        raise RuntimeError("SafetensorError: something we did not check")

    monkeypatch.setattr(safetensors.numpy, "load", broken)
    with pytest.raises(ValueError, match="something we did not check") as info:
        load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_padded_header_is_accepted(tmp_path):
    # The format allows trailing spaces in the header (writers pad it to 8-byte alignment).
    path = tmp_path / "pad.safetensors"
    write_raw(path, json.dumps({"x": F32}).encode() + b"   ", np.ones(2, "<f4").tobytes())
    np.testing.assert_array_equal(load(path)["x"], [1.0, 1.0])


def test_missing_file_raises_file_not_found(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        load(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_metadata(path)


def test_never_unpickles(tmp_path, monkeypatch):
    # A pickle that would run code if loaded: load must refuse it without calling pickle.
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle must never be used to read a file")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"w": np.zeros(3)}))
    with pytest.raises(ValueError, match="pickle"):
        load(path)
