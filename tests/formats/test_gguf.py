"""The GGUF header reader on generated files: headers packed here (checked byte for byte against
gguf-py, llama.cpp's reference writer), then truncated, bit-flipped, nested and inflated."""

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.errors import EdgeslmError, ModelNotFoundError
from edgeslm.formats.gguf import (
    ARRAY,
    MAX_ARRAY_DEPTH,
    SCALARS,
    STRING,
    GgufHeader,
    read_header,
)

SUMMARY_LIMIT = 64  # read_header keeps arrays up to this long; longer ones become {"array_of": n}
MIN_TENSOR_INFO = 24  # u64 name length + u32 n_dims + u32 type + u64 offset


# A typed value is (vtype, payload); an array's payload is (item_type, [payload, ...]).
def pack_value(vtype, payload):
    if vtype in SCALARS:
        return struct.pack(SCALARS[vtype], payload)
    if vtype == STRING:
        data = payload.encode("utf-8")
        return struct.pack("<Q", len(data)) + data
    item_type, items = payload
    return struct.pack("<IQ", item_type, len(items)) + b"".join(pack_value(item_type, i) for i in items)


def pack(version, tensor_count, kvs):
    """A GGUF file: header, metadata, then room for tensor_count minimal tensor infos."""
    out = [b"GGUF", struct.pack("<IQQ", version, tensor_count, len(kvs))]
    for key, (vtype, payload) in kvs:
        out += [pack_value(STRING, key), struct.pack("<I", vtype), pack_value(vtype, payload)]
    return b"".join(out) + b"\0" * (MIN_TENSOR_INFO * tensor_count)


def decoded(vtype, payload):
    """What read_header must return for a value."""
    if vtype == ARRAY:
        item_type, items = payload
        return [decoded(item_type, i) for i in items] if len(items) <= SUMMARY_LIMIT else {"array_of": len(items)}
    if vtype == 6:  # float32: what survives the round trip through 4 bytes
        return struct.unpack("<f", struct.pack("<f", payload))[0]
    return payload


INT_RANGES = {0: (0, 2**8 - 1), 1: (-(2**7), 2**7 - 1), 2: (0, 2**16 - 1), 3: (-(2**15), 2**15 - 1),
              4: (0, 2**32 - 1), 5: (-(2**31), 2**31 - 1), 10: (0, 2**64 - 1), 11: (-(2**63), 2**63 - 1)}


def payloads(vtype, depth):
    if vtype in INT_RANGES:
        return st.integers(*INT_RANGES[vtype])
    if vtype == 6:
        return st.floats(width=32, allow_nan=False)
    if vtype == 12:
        return st.floats(allow_nan=False)
    if vtype == 7:
        return st.booleans()
    if vtype == STRING:
        return st.text(max_size=12)
    # Arrays: one item type for all items; now and then long enough to be summarised (one value
    # repeated, which costs the generator one draw instead of a hundred).
    item_types = sorted({*SCALARS, STRING} | ({ARRAY} if depth > 1 else set()))
    return st.sampled_from(item_types).flatmap(lambda t: st.tuples(st.just(t), items(t, depth - 1)))


def items(vtype, depth):
    short = st.lists(payloads(vtype, depth), max_size=4)
    if vtype == ARRAY:
        return short
    long = st.tuples(payloads(vtype, depth), st.integers(SUMMARY_LIMIT - 1, 3 * SUMMARY_LIMIT))
    return short | long.map(lambda one_n: [one_n[0]] * one_n[1])


def typed_values(depth=3):
    return st.sampled_from(sorted({*SCALARS, STRING, ARRAY})).flatmap(
        lambda t: st.tuples(st.just(t), payloads(t, depth)))


KEYS = st.text(min_size=1, max_size=16)
HEADERS = st.tuples(st.sampled_from([2, 3]), st.integers(0, 4),
                    st.lists(st.tuples(KEYS, typed_values()), max_size=5, unique_by=lambda kv: kv[0]))


def write(tmp_path, blob):
    path = tmp_path / "m.gguf"
    path.unlink(missing_ok=True)  # rewriting a file in place costs ext4 a flush (auto_da_alloc): 2 ms, not 0.1
    path.write_bytes(blob)
    return path


def same(got, want):
    """Equality that treats NaN as equal to itself (float64 bit patterns stay NaN)."""
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same, got, want))
    return got == want and type(got) is type(want)


def test_packer_agrees_with_the_reference_writer(tmp_path):
    gguf = pytest.importorskip("gguf")
    kvs = [("general.architecture", (STRING, "llama")), ("llama.block_count", (4, 30)),
           ("f", (6, 0.5)), ("b", (7, True)), ("i64", (11, -5)), ("tokens", (ARRAY, (STRING, ["a", "bc"]))),
           ("nested", (ARRAY, (ARRAY, [(5, [1, 2]), (STRING, ["x"])])))]
    w = gguf.GGUFWriter(str(tmp_path / "ref.gguf"), "llama")
    types = {k: gguf.GGUFValueType(t) for k, (t, _) in kvs}
    for key, (vtype, payload) in kvs[1:]:
        w.add_key_value(key, _reference_value(vtype, payload), types[key],
                        sub_type=gguf.GGUFValueType(payload[0]) if vtype == ARRAY else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    ours = pack(3, 0, kvs)
    assert (tmp_path / "ref.gguf").read_bytes()[: len(ours)] == ours
    header = read_header(write(tmp_path, ours))
    assert header.metadata["nested"] == [[1, 2], ["x"]] and header.architecture == "llama"


def _reference_value(vtype, payload):
    if vtype != ARRAY:
        return payload
    return [_reference_value(payload[0], p) for p in payload[1]]


def test_nested_arrays_within_the_bound(tmp_path):
    value = (4, 7)
    for _ in range(MAX_ARRAY_DEPTH):
        value = (ARRAY, (value[0], [value[1]]))
    header = read_header(write(tmp_path, pack(3, 0, [("deep", value)])))
    inner = header.metadata["deep"]
    for _ in range(MAX_ARRAY_DEPTH - 1):
        inner = inner[0]
    assert inner == [7]


@pytest.mark.parametrize("depth", [MAX_ARRAY_DEPTH + 1, 100_000])
def test_a_depth_bomb_is_refused(tmp_path, depth):
    # Each level is 12 bytes (item type ARRAY, count 1): 100,000 levels fit in 1.2 MB and used to
    # raise RecursionError from deep inside the reader.
    blob = struct.pack("<4sIQQ", b"GGUF", 3, 0, 1) + pack_value(STRING, "deep") + struct.pack("<I", ARRAY)
    blob += struct.pack("<IQ", ARRAY, 1) * depth + struct.pack("<IQ", 4, 0)
    with pytest.raises(ModelNotFoundError, match="nested deeper than"):
        read_header(write(tmp_path, blob))


@pytest.mark.parametrize("item_type, count", [(0, 2**40), (10, 2**20), (STRING, 2**20), (ARRAY, 2**20),
                                              (12, 2**64 - 1)])
def test_counts_larger_than_the_file_are_refused_before_reading(tmp_path, item_type, count):
    blob = struct.pack("<4sIQQ", b"GGUF", 3, 0, 1) + pack_value(STRING, "a") + struct.pack("<IIQ", ARRAY, item_type, count)
    with pytest.raises(ModelNotFoundError, match="array of"):
        read_header(write(tmp_path, blob + b"\0" * 4096))


def test_a_huge_string_length_is_refused(tmp_path):
    blob = struct.pack("<4sIQQ", b"GGUF", 3, 0, 1) + struct.pack("<Q", 2**63) + b"key" + b"\0" * 4096
    with pytest.raises(ModelNotFoundError, match="string of"):
        read_header(write(tmp_path, blob))


def test_a_tensor_count_larger_than_the_file_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="tensors"):
        read_header(write(tmp_path, struct.pack("<4sIQQ", b"GGUF", 3, 2**63, 0)))


def test_a_long_scalar_array_is_summarised_not_kept(tmp_path):
    items = list(range(1000))
    header = read_header(write(tmp_path, pack(3, 0, [("ids", (ARRAY, (5, items))), ("after", (STRING, "ok"))])))
    assert header.metadata == {"ids": {"array_of": 1000}, "after": "ok"}


# Property: a generated header reads back exactly; any damage is a ModelNotFoundError, never a crash.
def check_header(tmp_path, version, tensor_count, kvs):
    header = read_header(write(tmp_path, pack(version, tensor_count, kvs)))
    assert isinstance(header, GgufHeader)
    assert (header.version, header.tensor_count) == (version, tensor_count)
    assert list(header.metadata) == [k for k, _ in kvs]
    for key, value in kvs:
        assert same(header.metadata[key], decoded(*value)), key


def check_damaged(tmp_path, blob):
    try:
        header = read_header(write(tmp_path, blob))
    except EdgeslmError:
        return
    assert isinstance(header, GgufHeader) and header.version in (2, 3)


def check_truncated(tmp_path, blob, cut):
    with pytest.raises(ModelNotFoundError):
        read_header(write(tmp_path, blob[:cut]))


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@st.composite
def damaged(draw):
    """A valid header with a few bytes overwritten, or random bytes behind a valid magic, or just bytes."""
    kind = draw(st.integers(0, 2))
    if kind == 2:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return b"GGUF" + struct.pack("<I", draw(st.sampled_from([2, 3]))) + draw(st.binary(max_size=200))
    blob = bytearray(pack(*draw(HEADERS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(blob) - 1))
        blob[at] = draw(st.integers(0, 255))
    return bytes(blob)


@st.composite
def truncated(draw):
    blob = pack(*draw(HEADERS))
    return blob, draw(st.integers(0, len(blob) - 1))


@FAST
@given(header=HEADERS)
def test_property_generated_headers_read_back(tmp_path, header):
    check_header(tmp_path, *header)


@FAST
@given(blob=damaged())
def test_property_damaged_headers_are_refused_or_read(tmp_path, blob):
    check_damaged(tmp_path, blob)


@FAST
@given(case=truncated())
def test_property_every_truncation_is_refused(tmp_path, case):
    check_truncated(tmp_path, *case)


@pytest.mark.slow
@SLOW
@given(header=HEADERS)
def test_property_generated_headers_read_back_slow(tmp_path, header):
    check_header(tmp_path, *header)


@pytest.mark.slow
@SLOW
@given(blob=damaged())
def test_property_damaged_headers_are_refused_or_read_slow(tmp_path, blob):
    check_damaged(tmp_path, blob)


@pytest.mark.slow
@SLOW
@given(case=truncated())
def test_property_every_truncation_is_refused_slow(tmp_path, case):
    check_truncated(tmp_path, *case)
