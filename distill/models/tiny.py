"""Tiny random BERT models with a vocabulary written on the spot: for tests and smoke runs, no downloads.

The vocabulary holds BERT's special tokens, single characters and their `##` continuations
(so any lower-case ASCII text tokenizes) plus the whole words given, so generated text
tokenizes into realistic multi-token words without a hub tokenizer.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

import torch

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(words: Iterable[str]) -> list[str]:
    """Special tokens, characters, `##`-characters, then the given words (deduplicated, order kept)."""
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIAL_TOKENS + characters + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    seen = set(vocab)
    for word in words:
        word = word.lower()
        if word and word not in seen:
            seen.add(word)
            vocab.append(word)
    return vocab


def write_tokenizer(directory: str | Path, words: Iterable[str]) -> Path:
    """Write a fast BERT tokenizer for `words` into `directory`."""
    from transformers import BertTokenizer  # tokenizers-backed (fast) in transformers 5

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(words)
    # transformers 5 takes the vocabulary as `vocab=`; an unknown `vocab_file=` is silently ignored.
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True, model_max_length=512
    )
    if tokenizer.vocab_size != len(vocab):
        raise RuntimeError(f"tokenizer has {tokenizer.vocab_size} tokens, expected {len(vocab)}")
    tokenizer.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


def build_tiny_bert(
    directory: str | Path,
    *,
    task: str = "qa",
    words: Iterable[str] = (),
    num_labels: int = 2,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised BERT (QA, classification, base or masked-LM) and its tokenizer into `directory`."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertModel,
    )

    directory = write_tokenizer(directory, words)
    vocab_size = len((directory / "vocab.txt").read_text(encoding="utf-8").splitlines())
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        num_labels=num_labels,
    )
    model_class = {
        "qa": BertForQuestionAnswering,
        "classification": BertForSequenceClassification,
        "base": BertModel,
        "mlm": BertForMaskedLM,
    }[task]
    torch.manual_seed(seed)
    model = model_class(config)
    model.save_pretrained(directory, safe_serialization=True)
    return directory
