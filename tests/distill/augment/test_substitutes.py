"""Where substitutes come from: word-vector neighbours, a masked LM, WordNet; and the word-level helpers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from distill.augment.augmenter import AnswerPreservingAug
from distill.augment.mlm import MaskedLMSubstitutes
from distill.augment.vectors import NeighbourTable, load_vectors
from distill.augment.words import STOPWORDS, find_words, match_case, replaceable_words, rewrite
from distill.config.augment import AugmentConfig
from distill.errors import DataError, ModelError
from tests.conftest import AUGMENT_WORDS

# --------------------------------------------------------------------------- words


def test_words_keep_offsets_and_only_alphabetic_non_stopwords_are_replaceable() -> None:
    text = "In 1066, the Normans' well-known castle (U2) fell."
    words = find_words(text)
    assert all(text[w.start : w.end] == w.text for w in words)
    assert [w.text for w in replaceable_words(text)] == ["Normans", "castle", "fell"]
    # A word that shares one character with an answer span is protected whole.
    assert [w.text for w in replaceable_words(text, [(13, 19)])] == ["castle", "fell"]


def test_rewrite_moves_offsets_past_longer_and_shorter_replacements() -> None:
    text = "old river near tall castle by the sea"
    words = {w.text: w for w in find_words(text)}
    result = rewrite(text, [(words["river"], "stream"), (words["tall"], "big")])
    assert result.text == "old stream near big castle by the sea"
    assert result.move(text.index("castle")) == result.text.index("castle")
    assert result.move(0) == 0
    assert match_case("Paris", "london") == "London"
    assert match_case("NASA", "esa") == "ESA"


# --------------------------------------------------------------------------- vectors


def test_neighbours_are_the_exact_cosine_top_k(tiny_vectors: Path) -> None:
    vectors = load_vectors(str(tiny_vectors))
    table = NeighbourTable.build(vectors, ["river", "castle", "not-a-word"], top_k=4)
    allowed = [i for i, w in enumerate(vectors.words) if w.isalpha() and w not in STOPWORDS]
    for word in ("river", "castle"):
        query = vectors.vectors[vectors.words.index(word)]
        scores = {vectors.words[i]: float(vectors.vectors[i] @ query) for i in allowed if vectors.words[i] != word}
        expected = sorted(scores, key=lambda w: -scores[w])[:4]
        assert table.predict(word) == expected
        assert table.predict(word.upper()) == expected  # looked up lower-cased
    assert table.predict("not-a-word") == []


def test_glove_text_file_loads_like_the_npy_layout(tiny_vectors: Path, tmp_path: Path) -> None:
    vectors = load_vectors(str(tiny_vectors))
    glove = tmp_path / "glove.txt"
    glove.write_text(
        "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in zip(vectors.words, vectors.vectors, strict=True))
    )
    again = load_vectors(str(glove))
    assert again.words == vectors.words
    np.testing.assert_allclose(again.vectors, vectors.vectors, atol=1e-6)
    assert len(load_vectors(str(glove), limit=10).words) == 10
    glove.write_text("river 0.1 0.2\ncastle 0.1\n")
    with pytest.raises(DataError, match=r"glove.txt: line 2: 1 values, expected 2"):
        load_vectors(str(glove))
    with pytest.raises(DataError, match="no such file or folder"):
        load_vectors(str(tmp_path / "missing"))


def test_the_neighbour_table_is_an_nlpaug_model(tiny_vectors: Path) -> None:
    import nlpaug.augmenter.word as naw

    table = NeighbourTable.build(load_vectors(str(tiny_vectors)), AUGMENT_WORDS, top_k=3)
    random.seed(0)
    augmented = naw.WordEmbsAug(model_type="glove", model=table, aug_p=1.0, aug_max=None).augment("river castle")
    first, second = augmented[0].split()
    assert first in table.predict("river") and second in table.predict("castle")


# --------------------------------------------------------------------------- masked LM


def test_masked_lm_candidates_match_the_fill_mask_pipeline(tiny_mlm: Path) -> None:
    """With one mask per pass (TinyBERT's way) our batched path equals transformers' fill-mask top-k."""
    from transformers import pipeline

    text = "the red fox lives in the river valley and eats berries."
    words = replaceable_words(text)
    one_at_a_time = MaskedLMSubstitutes(str(tiny_mlm), top_k=5, mask_ratio=0.001)
    found = one_at_a_time.candidates(text, words)
    fill = pipeline("fill-mask", model=str(tiny_mlm), top_k=len(one_at_a_time.id_to_token))
    for word, candidates in zip(words, found, strict=True):
        masked = text[: word.start] + "[MASK]" + text[word.end :]
        ranked = [r["token_str"] for r in fill(masked)]  # every token, best first
        # Ours keeps whole alphabetic words that are not stopwords or the word itself.
        expected = [t for t in ranked if t.isalpha() and t not in STOPWORDS and t != word.text][:5]
        assert candidates == expected, word.text
    # Several masks per pass (the fast default) still gives whole, alphabetic, non-original words.
    spread = MaskedLMSubstitutes(str(tiny_mlm), top_k=5)
    for word, candidates in zip(words, spread.candidates(text, words), strict=True):
        assert len(candidates) == 5 and word.text not in candidates
        assert all(c.isalpha() and not c.startswith("##") for c in candidates)


def test_long_texts_are_windowed_and_every_word_gets_candidates(tiny_mlm: Path) -> None:
    text = " ".join(["the red fox lives in the river valley and eats berries."] * 40)  # ~480 pieces
    words = replaceable_words(text)
    mlm = MaskedLMSubstitutes(str(tiny_mlm), top_k=3, window=64)
    tokenized = mlm.tokenize(text, words)
    passes = mlm._passes(0, tokenized, range(len(words)))
    assert all(len(p.ids) <= 64 for p in passes)
    assert sorted(w for p in passes for _, w in p.words) == list(range(len(words)))  # each word masked once
    assert all(len(c) == 3 for c in mlm.candidates(text, words))


def test_a_model_without_wordpiece_vocabulary_is_refused(tmp_path: Path, tiny_qa_model: Path) -> None:
    with pytest.raises(ModelError, match="no such model folder"):
        MaskedLMSubstitutes(str(tmp_path / "nothing"), top_k=3)


def test_tinybert_rule_masked_lm_for_single_pieces_vectors_for_the_rest(tiny_mlm: Path, tiny_vectors: Path) -> None:
    settings = AugmentConfig(method="tinybert", candidates=4, mlm=str(tiny_mlm), vectors=str(tiny_vectors))
    table = NeighbourTable.build(load_vectors(str(tiny_vectors)), AUGMENT_WORDS, top_k=4)
    aug = AnswerPreservingAug(settings, neighbours=table)
    text = "the fox lives near the harbour tower"  # 'harbour', 'tower' are not in the tiny MLM's vocabulary
    words = replaceable_words(text)
    [found] = aug.substitutes([text], [words])
    by_word = dict(zip((w.text for w in words), found, strict=True))
    assert by_word["harbour"] == table.predict("harbour")
    assert by_word["tower"] == table.predict("tower")
    assert by_word["fox"] == aug.mlm.candidates(text, words)[0]


# --------------------------------------------------------------------------- WordNet


def test_synonyms_come_from_wordnet_or_the_error_says_how_to_get_it() -> None:
    from distill.augment.synonyms import WordNetSynonyms, debian_wordnet_folder

    try:
        import nltk  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match=r"pip install 'distill\[wordnet\]'"):
            WordNetSynonyms(5)
        return
    if debian_wordnet_folder() is None:
        with pytest.raises(DataError, match="apt-get install wordnet-base wordnet-sense-index"):
            WordNetSynonyms(5)
        return
    synonyms = WordNetSynonyms(5)
    assert "large" in synonyms.predict("big")
    assert all(s.isalpha() and s != "big" for s in synonyms.predict("big"))
    assert synonyms.predict("qwertyuiop") == []
