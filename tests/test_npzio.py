"""The header-checking .npz reader (issue 9, item 8): nothing is read before its header is checked."""

import io
import os
import resource
import time
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from faults_support import quick_enough
from fluxparity._npzio import Expect, NpzError, npz_headers, open_regular_file, read_npz

WEIGHTS = {"cell.Wi": Expect((4, 1), ("float32", "float64"), finite=True),
           "cell.Wh": Expect((4, 4), ("float32", "float64"), finite=True),
           "kind": Expect.text()}


def good(path, **override):
    arrays = {"cell.Wi": np.arange(4.0).reshape(4, 1), "cell.Wh": np.eye(4), "kind": np.str_("lstm")}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_reads_checked_arrays_and_text(tmp_path):
    out = read_npz(good(tmp_path / "w.npz"), WEIGHTS)
    assert list(out) == ["cell.Wi", "cell.Wh", "kind"]
    np.testing.assert_array_equal(out["cell.Wh"], np.eye(4))
    assert out["kind"] == "lstm" and out["cell.Wi"].flags.c_contiguous and out["cell.Wi"].flags.writeable


def test_fortran_order_and_big_endian_come_back_c_contiguous_native(tmp_path):
    wh = np.asfortranarray(np.arange(16.0).reshape(4, 4)).astype(">f8")
    out = read_npz(good(tmp_path / "w.npz", **{"cell.Wh": wh}), WEIGHTS)
    np.testing.assert_array_equal(out["cell.Wh"], np.arange(16.0).reshape(4, 4))
    assert out["cell.Wh"].flags.c_contiguous and out["cell.Wh"].dtype == np.dtype("float64")


def test_missing_and_unexpected_keys_are_listed_together(tmp_path):
    path = good(tmp_path / "w.npz", **{"cell.Wh": None, "stray": np.zeros(2)})
    with pytest.raises(NpzError) as error:
        read_npz(path, WEIGHTS)
    assert error.value.missing == ("cell.Wh",) and error.value.unexpected == ("stray",)
    assert str(path) in str(error.value) and "missing key(s): 'cell.Wh'" in str(error.value)
    assert "unexpected key(s): 'stray'" in str(error.value)


def test_a_wrong_shape_names_that_entry_expected_and_found(tmp_path):
    path = good(tmp_path / "w.npz", **{"cell.Wh": np.zeros((4, 3))})
    with pytest.raises(NpzError) as error:
        read_npz(path, WEIGHTS)
    assert error.value.entry == "cell.Wh"
    assert str(error.value) == (f"{path}, entry 'cell.Wh': expected float32 or float64 of shape (4, 4), "
                                "found float64 of shape (4, 3)")


def test_float16_is_refused_where_not_allowed(tmp_path):
    path = good(tmp_path / "w.npz", **{"cell.Wi": np.zeros((4, 1), np.float16)})
    with pytest.raises(NpzError, match="entry 'cell.Wi'.*found float16"):
        read_npz(path, WEIGHTS)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_where_asked(tmp_path, bad):
    wi = np.zeros((4, 1))
    wi[2, 0] = bad
    with pytest.raises(NpzError, match="entry 'cell.Wi': expected finite values, found 1 NaN or Inf"):
        read_npz(good(tmp_path / "w.npz", **{"cell.Wi": wi}), WEIGHTS)


def test_text_stored_as_a_number_or_numbers_stored_as_text_are_refused(tmp_path):
    with pytest.raises(NpzError, match="entry 'kind': expected text"):
        read_npz(good(tmp_path / "a.npz", kind=np.int64(3)), WEIGHTS)
    with pytest.raises(NpzError, match="entry 'cell.Wi'.*found str32"):
        read_npz(good(tmp_path / "b.npz", **{"cell.Wi": np.array([["1"]] * 4)}), WEIGHTS)


def test_bytes_text_is_decoded(tmp_path):
    assert read_npz(good(tmp_path / "w.npz", kind=np.bytes_(b"gru")), WEIGHTS)["kind"] == "gru"


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"cell.Wi": np.array([None, 1], dtype=object)})
    with pytest.raises(NpzError, match="objects and records are never read"):
        read_npz(path, {"cell.Wi": Expect(None, ("float64",))})


def test_records_are_never_read(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"cell.Wi": np.zeros(3, dtype=[("a", "<f8"), ("b", "<f8")])})
    with pytest.raises(NpzError, match="objects and records are never read"):
        read_npz(path, {"cell.Wi": Expect(None, ("float64",))})


def test_a_truncated_file_is_one_error(tmp_path):
    path = good(tmp_path / "w.npz")
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(NpzError) as error:
            read_npz(path, WEIGHTS)
        assert str(path) in str(error.value)


def test_not_a_zip_and_no_file_are_one_error(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(NpzError, match="zip"):
        read_npz(tmp_path / "text.npz", WEIGHTS)
    with pytest.raises(NpzError, match="no such file"):
        read_npz(tmp_path / "absent.npz", WEIGHTS)


def _npz_with_header_only(path, name, shape, payload_bytes: int) -> None:
    """A .npz whose entry declares ``shape`` (float64) but holds only ``payload_bytes`` of data."""
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    buffer.write(b"\0" * payload_bytes)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name + ".npy", buffer.getvalue())


@pytest.mark.parametrize("elements", [500_000_000, 10 ** 11])
def test_a_huge_header_in_a_tiny_file_fails_fast_with_little_memory(tmp_path, elements):
    path = tmp_path / "lying.npz"
    _npz_with_header_only(path, "cell.Wh", (elements,), 4_000_000)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(NpzError) as error:
        read_npz(path, {"cell.Wh": Expect((None,), ("float64",))}, max_bytes=1 << 40)
    assert quick_enough(time.perf_counter() - started, 1.0)  # scaled by the machine's load
    # ru_maxrss is in KiB on Linux: the peak grew by less than 100 MB (the data would be 4 GB or more)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000
    assert error.value.entry == "cell.Wh" and "truncated or inconsistent" in str(error.value)


def test_more_data_than_allowed_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros(1_000_000))  # 8 MB of data in a few kB of file
    with pytest.raises(NpzError, match="at most 1000 bytes"):
        read_npz(path, {"x": Expect((None,), ("float64",))}, max_bytes=1000)


def test_data_of_exactly_max_bytes_is_read(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, x=np.arange(125.0))  # 1000 bytes of float64
    np.testing.assert_array_equal(read_npz(path, {"x": Expect((None,), ("float64",))}, max_bytes=1000)["x"],
                                  np.arange(125.0))
    with pytest.raises(NpzError, match="at most 999 bytes"):
        read_npz(path, {"x": Expect((None,), ("float64",))}, max_bytes=999)


def test_headers_are_listed_without_reading_data(tmp_path):
    headers = npz_headers(good(tmp_path / "w.npz"))
    assert list(headers) == ["cell.Wi", "cell.Wh", "kind"]
    assert headers["cell.Wh"].shape == (4, 4) and headers["cell.Wh"].dtype == np.dtype("float64")
    assert headers["cell.Wh"].fortran_order is False and headers["cell.Wh"].data_bytes == 128


def test_a_member_that_is_not_an_array_is_refused(tmp_path):
    path = good(tmp_path / "w.npz")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(NpzError, match="only .npy arrays") as error:
        read_npz(path, WEIGHTS)
    assert error.value.entry == "readme.txt"  # the member's whole name: it is not an array's
    assert str(error.value) == (f"{path}, entry 'readme.txt': expected only .npy arrays in the archive, "
                                "found a member named 'readme.txt'")


def test_an_entry_stored_twice_is_refused(tmp_path):
    path = good(tmp_path / "w.npz")
    buffer = io.BytesIO()
    npy_format.write_array(buffer, np.zeros((4, 1)))
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("cell.Wi.npy", buffer.getvalue())
    for read in (lambda: npz_headers(path), lambda: read_npz(path, WEIGHTS)):
        with pytest.raises(NpzError) as error:
            read()
        assert error.value.entry == "cell.Wi"
        assert str(error.value) == f"{path}, entry 'cell.Wi': expected each entry once, found it twice"


def test_the_file_handed_out_is_back_in_blocking_mode(tmp_path):
    """The open is non-blocking (so a FIFO cannot hang it); the regular file it returns reads as any file does."""
    path = good(tmp_path / "w.npz")
    with open_regular_file(path) as f:
        assert os.get_blocking(f.fileno())
        assert f.read() == path.read_bytes()


def test_shape_wildcards(tmp_path):
    out = read_npz(good(tmp_path / "w.npz"), {**WEIGHTS, "cell.Wh": Expect((4, None), ("float64",))})
    assert out["cell.Wh"].shape == (4, 4)


def test_ascii_text_as_uint8_codes(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, format=np.frombuffer(b"fluxparity-weights/1", np.uint8), kind=np.array([0xff, 0x41], np.uint8))
    assert read_npz(path, {"format": Expect.ascii()}, allow_unexpected=True) == {"format": "fluxparity-weights/1"}
    with pytest.raises(NpzError, match="entry 'kind': expected ASCII text"):
        read_npz(path, {"format": Expect.ascii(), "kind": Expect.ascii()})
    with pytest.raises(NpzError, match="entry 'format': expected ASCII text as a uint8 array of at most 4 codes"):
        read_npz(path, {"format": Expect.ascii(4)}, allow_unexpected=True)


def test_ascii_text_is_at_most_256_codes_by_default_and_one_dimensional(tmp_path):
    # docs: text entries are (n,) uint8 arrays of ASCII codes, n <= 256 unless a reader asks otherwise
    path = tmp_path / "t.npz"
    np.savez(path, ok=np.full(256, 0x61, np.uint8), long=np.full(257, 0x61, np.uint8),
             square=np.full((2, 2), 0x61, np.uint8))
    assert read_npz(path, {"ok": Expect.ascii()}, allow_unexpected=True) == {"ok": "a" * 256}
    with pytest.raises(NpzError, match="entry 'long': expected ASCII text as a uint8 array of at most 256 codes"):
        read_npz(path, {"long": Expect.ascii()}, allow_unexpected=True)
    with pytest.raises(NpzError) as error:
        read_npz(path, {"square": Expect.ascii()}, allow_unexpected=True)
    assert error.value.entry == "square" and "(2, 2)" in str(error.value)



def test_the_byte_budget_counts_every_entry(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, a=np.zeros(75), b=np.ones(75))  # 600 bytes each: each within 1000, both together not
    both = {"a": Expect((None,), ("float64",)), "b": Expect((None,), ("float64",))}
    with pytest.raises(NpzError, match="at most 1000 bytes of data in the file"):
        read_npz(path, both, max_bytes=1000)
    assert read_npz(path, both, max_bytes=1200)["b"].sum() == 75.0  # exactly the budget


def test_only_missing_or_only_stray_entries_are_refused_too(tmp_path):
    path = good(tmp_path / "w.npz")
    with pytest.raises(NpzError, match=r"missing key\(s\): 'cell.bias'$") as error:
        read_npz(path, {**WEIGHTS, "cell.bias": Expect((4,), ("float64",))})
    assert error.value.missing == ("cell.bias",) and error.value.unexpected == ()
    with pytest.raises(NpzError, match=r"unexpected key\(s\): 'kind'$"):
        read_npz(path, {n: e for n, e in WEIGHTS.items() if n != "kind"})


def test_data_that_fails_its_crc_is_one_error_naming_the_file_and_entry(tmp_path):
    path = tmp_path / "w.npz"
    data = np.full(100_000, 1234.5)  # 800 kB: reading the header does not reach the end, where the CRC is checked
    np.savez(path, x=data)
    raw = bytearray(path.read_bytes())
    at = raw.index(data[-2:].tobytes(), len(raw) - 4096)  # stored, not compressed: the data as written
    raw[at] ^= 0xFF  # one byte of the next-to-last element
    path.write_bytes(bytes(raw))
    with pytest.raises(NpzError) as error:
        read_npz(path, {"x": Expect((None,), ("float64",))})
    assert (error.value.path, error.value.entry) == (str(path), "x") and "expected readable data" in str(error.value)


def test_entries_after_a_text_entry_are_read_too(tmp_path):
    path = good(tmp_path / "w.npz")
    expected = {"kind": Expect.text(), "cell.Wi": WEIGHTS["cell.Wi"], "cell.Wh": WEIGHTS["cell.Wh"]}  # text first
    out = read_npz(path, expected)
    assert out["kind"] == "lstm" and list(out) == ["kind", "cell.Wi", "cell.Wh"]
    np.testing.assert_array_equal(out["cell.Wh"], np.eye(4))


def test_npy_format_version_2_is_read_and_version_3_refused_by_name(tmp_path):
    # NumPy writes version 2.0 when a header outgrows 64 kB; 3.0 (UTF-8 field names) is not read
    array = np.arange(6.0).reshape(2, 3)
    for version in ((2, 0), (3, 0)):
        member = io.BytesIO()
        npy_format.write_array(member, array, version=version)
        with zipfile.ZipFile(tmp_path / f"v{version[0]}.npz", "w") as archive:
            archive.writestr("w.npy", member.getvalue())
    np.testing.assert_array_equal(read_npz(tmp_path / "v2.npz", {"w": Expect((2, 3), ("float64",))})["w"], array)
    with pytest.raises(NpzError, match=r"unsupported .npy format version \(3, 0\)") as error:
        read_npz(tmp_path / "v3.npz", {"w": Expect((2, 3), ("float64",))})
    assert error.value.entry == "w" and str(error.value).startswith(f"{tmp_path / 'v3.npz'}, entry 'w': ")
