"""runtime/streams.py: per-sensor sliding windows fill, hop, stay bounded, and a refused push changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from edgeslm.runtime.streams import StreamError, StreamStore


def test_windows_fill_every_hop_and_hold_the_last_n_readings():
    store = StreamStore(length=5, hop=2)
    assert store.push("a", [0, 1, 2, 3]) == [] and store.pending("a") == 1
    got = store.push("a", [4, 5, 6, 7, 8])  # windows end at readings 5, 7 and 9
    assert [w.end for w in got] == [5, 7, 9]
    assert [w.values[:, 0].tolist() for w in got] == [[0, 1, 2, 3, 4], [2, 3, 4, 5, 6], [4, 5, 6, 7, 8]]
    assert store.pending("a") == 2
    # one reading at a time gives the same windows as any other split of the same stream
    one = StreamStore(length=5, hop=2)
    singles = [w for x in range(9) for w in one.push("a", [x])]
    assert [w.values.tolist() for w in singles] == [w.values.tolist() for w in got]


def test_default_hop_is_non_overlapping_and_wraps_the_ring():
    store, stream = StreamStore(length=4, channels=2), np.arange(40, dtype=np.float32).reshape(20, 2)
    windows = [w for i in range(0, 20, 3) for w in store.push("s", stream[i:i + 3])]
    assert [w.end for w in windows] == [4, 8, 12, 16, 20]
    for w in windows:
        np.testing.assert_array_equal(w.values, stream[w.end - 4:w.end])


def test_sensors_are_independent_and_bounded():
    store = StreamStore(length=3, max_sensors=2)
    store.push("a", [1, 2])
    store.push("b", [9])
    with pytest.raises(StreamError, match="limit of 2 sensors") as err:
        store.push("c", [1])
    assert err.value.status == 409 and len(store) == 2
    assert [w.values[:, 0].tolist() for w in store.push("a", [3])] == [[1, 2, 3]]
    assert store.nbytes() == 2 * 3 * 4
    assert StreamStore(length=500, max_sensors=1000).nbytes() == 0  # buffers are made as sensors report


@pytest.mark.parametrize(("sensor", "values", "status", "message"), [
    ("a", [1.0, float("nan")], 400, "finite"),
    ("a", [1.0, "x"], 400, "values[1] must be a number"),
    ("a", [1.0, None], 400, "must be a number"),
    ("a", [[1.0, 2.0]], 400, "1 channel(s)"),
    ("a", [0.5] * 7, 400, "limit is 6"),
    ("a", [], 400, "non-empty list"),
    ("bad id!", [1.0], 400, "sensor must be"),
    ("ghost", [1.0], 404, "not registered"),
])
def test_a_bad_push_is_refused_whole_and_touches_no_window(sensor, values, status, message):
    store = StreamStore(length=3, max_push=6, sensors=["a", "b"])
    store.push("a", [1, 2])
    store.push("b", [7])
    with pytest.raises(StreamError) as err:
        store.push(sensor, values)
    assert err.value.status == status and message in str(err.value)
    assert len(store) == 2 and store.pending("a") == 1 and store.pending("b") == 2
    assert [w.values[:, 0].tolist() for w in store.push("a", [3])] == [[1, 2, 3]]
    assert [w.values[:, 0].tolist() for w in store.push("b", [8, 9])] == [[7, 8, 9]]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="hop"):
        StreamStore(length=4, hop=5)
    with pytest.raises(ValueError, match="max_sensors"):
        StreamStore(length=4, max_sensors=0)
