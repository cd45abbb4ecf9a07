"""runtime/streams.py: per-sensor sliding windows fill, hop, stay bounded, and a refused push changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from edgeslm.runtime.streams import StreamError, StreamSettings, StreamStore


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


class Clock:
    """The store's clock, moved by hand: expiry is tested without sleeping."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_silent_sensor_is_forgotten_after_the_ttl_and_a_heard_one_kept():
    clock = Clock()
    store = StreamStore(length=3, max_sensors=2, ttl_s=10, clock=clock)
    store.push("a", [1, 2])
    clock.now += 6
    store.push("b", [7, 8])
    clock.now += 5  # a: silent 11 s, past the ttl; b: 5 s
    assert [s["sensor"] for s in store.sensors(10)] == ["b"] and store.forgotten == 1
    assert store.pending("a") == 3  # its two readings are gone: it starts a fresh window
    store.push("c", [5])  # a's place is free again (max_sensors 2)
    assert [w.values[:, 0].tolist() for w in store.push("b", [9])] == [[7, 8, 9]]  # b lost nothing
    clock.now += 10  # exactly the ttl since b and c last reported: kept
    assert len(store) == 2 and store.expire() == 0
    clock.now += 0.5
    assert store.expire() == 2 and len(store) == 0 and store.nbytes() == 0


def test_a_full_store_refuses_a_new_sensor_until_one_falls_silent():
    clock = Clock()
    store = StreamStore(length=3, max_sensors=1, ttl_s=30, clock=clock)
    store.push("a", [1])
    with pytest.raises(StreamError, match="silent for 30 s is forgotten") as err:
        store.push("b", [1])
    assert err.value.status == 409 and store.pending("a") == 2
    clock.now += 31
    assert store.push("b", [4, 5, 6])[0].values[:, 0].tolist() == [4, 5, 6] and store.pending("a") == 3


def test_sensors_lists_the_most_recently_heard_first_up_to_the_limit():
    clock = Clock()
    store = StreamStore(length=4, hop=2, clock=clock)
    for i, sensor in enumerate(["s1", "s2", "s3"]):
        store.push(sensor, [0.5] * (i + 1))
        clock.now += 1
    store.push("s1", [0.5] * 4)  # heard again: first in the list now; 5 readings, a window at 4
    clock.now += 0.25
    assert store.sensors(2) == [
        {"sensor": "s1", "filled": 4, "pending": 1, "received": 5, "idle_s": 0.25},
        {"sensor": "s3", "filled": 3, "pending": 1, "received": 3, "idle_s": 1.25},
    ]
    assert store.sensors(0) == [] and len(store.sensors(100)) == 3


def test_settings_cap_the_hop_at_each_models_length():
    settings = StreamSettings(hop=70, max_sensors=5, ttl_s=60)
    short, long = settings.store(length=50, channels=1), settings.store(length=500, channels=2)
    assert (short.hop, long.hop, long.channels, long.max_sensors, long.ttl_s) == (50, 70, 2, 5, 60)
    assert StreamSettings().store(length=140, channels=1).hop == 140
    for ttl in (0, -1.0):
        with pytest.raises(ValueError, match="ttl_s must be > 0"):
            StreamStore(length=4, ttl_s=ttl)
