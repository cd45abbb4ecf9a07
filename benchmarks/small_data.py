"""Default training on a small labelled set, side by side with TF-IDF + logistic regression and with
the old fixed 1.5-epoch schedule, on the same held-out split.

    .venv/bin/python benchmarks/small_data.py rotten-tomatoes --sample 600 [--json]
    .venv/bin/python benchmarks/small_data.py my-statements.jsonl [--json]

DATA is a built-in set (its splits pooled, then sampled) or the user's own .jsonl/.csv file. The
sample is written as one file and split by `edgeslm train` itself (80/10/10 by group or text), the
way a user's own file is.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from edgeslm.data.catalog import BUILTIN, load_dataset
from edgeslm.data.records import read_examples, write_jsonl
from edgeslm.train.config import TrainConfig
from edgeslm.train.trainer import train


def tfidf_baseline(train_rows: list, test_rows: list) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=10, class_weight="balanced")
    clf.fit(vec.fit_transform([e.text for e in train_rows]), [e.label for e in train_rows])
    predicted = clf.predict(vec.transform([e.text for e in test_rows]))
    return round(float(f1_score([e.label for e in test_rows], predicted, average="macro")), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--sample", type=int, help="use N rows (default: all)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=Path("runs/small-data"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    if args.data in BUILTIN:
        sets = load_dataset(args.data, seed=args.seed)
        rows = sets.train + sets.val + sets.test
    else:
        rows = read_examples(Path(args.data))
    if args.sample:
        rows = random.Random(args.seed).sample(rows, min(args.sample, len(rows)))
    data = write_jsonl(args.out / "data.jsonl", rows)

    results = {"data": args.data, "rows": len(rows)}
    for name, config in (("defaults", TrainConfig(data=str(data), seed=args.seed)),
                         ("fixed-1.5-epochs", TrainConfig(data=str(data), seed=args.seed, min_steps=1))):
        started = time.perf_counter()
        record = train(config, args.out / name, progress=not args.json)
        results[name] = {"test_macro_f1": record["metrics"]["test"]["macro_f1"],
                         "test_accuracy": record["metrics"]["test"]["accuracy"], "steps": record["steps"],
                         "max_length": record["max_length"], "truncated_train": record["dataset"]["truncated"]["train"],
                         "seconds": round(time.perf_counter() - started, 1)}
        results["sizes"] = record["dataset"]["sizes"]
    split = load_dataset(str(data), seed=args.seed)
    results["tfidf_logreg"] = {"test_macro_f1": tfidf_baseline(split.train, split.test)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.data}: {results['rows']} rows, split {results['sizes']}")
    print(f"{'':18} {'test macro-F1':>13} {'steps':>6} {'seconds':>8}")
    for name in ("defaults", "fixed-1.5-epochs", "tfidf_logreg"):
        r = results[name]
        print(f"{name:18} {r['test_macro_f1']:>13.4f} {r.get('steps', ''):>6} {r.get('seconds', ''):>8}")


if __name__ == "__main__":
    main()
