"""Masked-LM substitutes for many words of a text in a few batched forward passes.

TinyBERT (and Haystack's port) give every candidate word its own masked copy of the whole
text and compute vocabulary logits at every position: one forward pass and V x T logits
per word. Here a text is cut into windows of at most `window` word pieces; the words of a
window are spread over a few passes, each masking about `mask_ratio` of the pieces (BERT
pretrains at 15%), the words masked together as far apart as possible; all passes of a
text run as a batch, and the vocabulary head runs only at the masked positions. A word of
several pieces is masked as a single [MASK], so its substitutes are whole words.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from distill.augment.words import STOPWORDS, Word
from distill.errors import ModelError
from distill.models.loading import load_model, load_tokenizer

log = logging.getLogger("distill")


@dataclass(frozen=True)
class Tokenized:
    """A text's word pieces (no special tokens) and, per word asked about, its piece range or None."""

    ids: list[int]
    pieces: list[tuple[int, int] | None]  # [first, last + 1) into `ids`, None when pieces and word do not align

    def piece_count(self, index: int) -> int | None:
        span = self.pieces[index]
        return None if span is None else span[1] - span[0]


@dataclass(frozen=True)
class _Pass:
    ids: list[int]
    mask_positions: list[int]
    words: list[tuple[int, int]]  # (text, word) for each mask, in position order


class MaskedLMSubstitutes:
    """Top-k whole-word substitutes from a WordPiece masked LM (BERT family)."""

    def __init__(
        self,
        model_name: str,
        *,
        top_k: int,
        mask_ratio: float = 0.15,
        batch_size: int = 32,
        window: int = 128,
    ):
        self.name = model_name
        self.top_k = top_k
        self.mask_ratio = mask_ratio
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(model_name)
        vocab = self.tokenizer.get_vocab()
        if self.tokenizer.mask_token_id is None or not any(token.startswith("##") for token in vocab):
            raise ModelError(
                f"model '{model_name}': contextual augmentation needs a WordPiece (BERT-family) masked LM "
                "with a [MASK] token"
            )
        self.model, fresh = load_model(model_name, "mlm")
        if fresh:
            log.warning(
                "model '%s' has no trained masked-LM head (%d weights newly initialised): its substitutes are random",
                model_name,
                len(fresh),
            )
        self.model.eval()
        self.head = _vocabulary_head(self.model)  # None: an architecture we cannot split (full logits instead)
        self.window = min(window, self.tokenizer.model_max_length) - 2  # room for [CLS] and [SEP]
        self.allowed = self._allowed_tokens(vocab)
        self.id_to_token = {i: token for token, i in vocab.items()}

    def _allowed_tokens(self, vocab: dict[str, int]) -> torch.Tensor:
        """Substitutes must be whole alphabetic non-stopwords: no '##' pieces, specials, digits or punctuation."""
        allowed = torch.zeros(self.model.get_output_embeddings().weight.shape[0], dtype=torch.bool)
        special = set(self.tokenizer.all_special_ids)
        for token, index in vocab.items():
            if index < len(allowed) and index not in special and token.isalpha() and token.lower() not in STOPWORDS:
                allowed[index] = True
        return allowed

    # ----------------------------------------------------------------------- tokens

    def tokenize(self, text: str, words: Sequence[Word]) -> Tokenized:
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        starts = [start for start, _ in offsets]
        pieces: list[tuple[int, int] | None] = []
        for word in words:
            first = bisect_left(starts, word.start)
            last = first
            while last < len(offsets) and offsets[last][0] < word.end:
                last += 1
            aligned = first < last and starts[first] == word.start and offsets[last - 1][1] == word.end
            pieces.append((first, last) if aligned else None)
        return Tokenized(encoding["input_ids"], pieces)

    # ----------------------------------------------------------------------- passes

    def _passes(self, text: int, tokenized: Tokenized, targets: Sequence[int]) -> list[_Pass]:
        """Windows over one text, each owning a block of pieces; the words it owns spread over a few passes."""
        n, width = len(tokenized.ids), self.window
        margin = width // 8
        block = width - 2 * margin if n > width else width
        by_start = sorted((tokenized.pieces[i][0], i) for i in targets if tokenized.pieces[i] is not None)
        passes: list[_Pass] = []
        for block_start in range(0, max(n, 1), block):
            owned = [i for start, i in by_start if block_start <= start < block_start + block]
            if not owned:
                continue
            window_start = max(0, min(block_start - margin, n - width))
            window_end = min(n, window_start + width)
            owned = [i for i in owned if tokenized.pieces[i][1] <= window_end]  # a word cut by the edge: skip
            per_pass = max(1, int(self.mask_ratio * (window_end - window_start)))
            count = math.ceil(len(owned) / per_pass)
            for p in range(count):
                passes.append(self._masked(text, tokenized, window_start, window_end, sorted(owned[p::count])))
        return passes

    def _masked(self, text: int, tokenized: Tokenized, start: int, end: int, words: list[int]) -> _Pass:
        spans = {tokenized.pieces[i][0]: (tokenized.pieces[i][1], i) for i in words}
        ids = [self.tokenizer.cls_token_id]
        positions, order = [], []
        cursor = start
        while cursor < end:
            if cursor in spans:
                stop, word = spans[cursor]
                positions.append(len(ids))
                order.append((text, word))
                ids.append(self.tokenizer.mask_token_id)
                cursor = stop
            else:
                ids.append(tokenized.ids[cursor])
                cursor += 1
        ids.append(self.tokenizer.sep_token_id)
        return _Pass(ids, positions, order)

    # ----------------------------------------------------------------------- prediction

    @torch.inference_mode()
    def _logits_at_masks(self, batch: list[_Pass]) -> torch.Tensor:
        """(total masks, V) vocabulary logits, computed only where a [MASK] is."""
        length = max(len(p.ids) for p in batch)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([p.ids + [pad] * (length - len(p.ids)) for p in batch])  # (B, T)
        attention = torch.tensor([[1] * len(p.ids) + [0] * (length - len(p.ids)) for p in batch])
        rows = torch.tensor([b for b, p in enumerate(batch) for _ in p.mask_positions])
        cols = torch.tensor([c for p in batch for c in p.mask_positions])
        if self.head is None:  # full logits, then pick the masked rows
            return self.model(input_ids=input_ids, attention_mask=attention).logits[rows, cols]
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention).last_hidden_state  # (B, T, H)
        return self.head(hidden[rows, cols])  # (masks, V)

    def candidates(self, text: str, words: Sequence[Word]) -> list[list[str]]:
        """Substitutes for every word of one text; [] for words it cannot place."""
        [found] = self.candidates_many([(self.tokenize(text, words), words, range(len(words)))])
        return found

    def candidates_many(
        self, items: Sequence[tuple[Tokenized, Sequence[Word], Sequence[int]]]
    ) -> list[list[list[str]]]:
        """For each (tokenized text, its words, indices of the words to fill): substitutes per index.

        The passes of all texts share batches, so short texts (sentences) fill a batch together.
        """
        found: dict[tuple[int, int], list[str]] = {}
        passes = [
            p for text, (tokenized, _, targets) in enumerate(items) for p in self._passes(text, tokenized, targets)
        ]
        for begin in range(0, len(passes), self.batch_size):
            batch = passes[begin : begin + self.batch_size]
            logits = self._logits_at_masks(batch).float()  # (masks, V)
            logits = logits.masked_fill(~self.allowed[: logits.shape[1]], float("-inf"))
            scores, top = torch.topk(logits, min(self.top_k + 1, logits.shape[1]), dim=1)
            masked = [key for p in batch for key in p.words]
            for key, row_scores, ids in zip(masked, scores, top.tolist(), strict=True):
                original = items[key[0]][1][key[1]].text.lower()
                tokens = [self.id_to_token[i] for i, score in zip(ids, row_scores, strict=True) if score > -math.inf]
                found[key] = [t for t in tokens if t.lower() != original][: self.top_k]
        return [[found.get((text, i), []) for i in targets] for text, (_, _, targets) in enumerate(items)]


def _vocabulary_head(model: Any) -> Any:
    """The module mapping hidden states to vocabulary logits, for the architectures that expose it."""
    for name in ("cls", "lm_head"):  # BERT family; RoBERTa/XLM-R family
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    return None
