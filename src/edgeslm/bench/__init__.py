"""Benchmarks after MLPerf LoadGen: fixed seeds, side-by-side baselines, accuracy in the same run."""
