"""WordNet synonyms through nlpaug's WordNet model, with the data found offline.

nlpaug downloads WordNet when nltk cannot find it, which hangs on a machine without
internet. Here the data is looked up first: nltk's own data path, else the WordNet 3.0
files that Debian's `wordnet-base` and `wordnet-sense-index` packages install, assembled
once into an nltk data folder under the distill cache. Missing both is a one-line error.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from distill.augment.words import is_replaceable
from distill.errors import DataError

DEBIAN_WORDNET = Path("/usr/share/wordnet")

# WordNet 3.0's lexicographer files in number order (lexnames(5WN)); nltk reads this list
# from a `lexnames` file that Debian does not ship. The number is the synset type.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
_SYNSET_TYPE = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def _nltk() -> Any:
    try:
        import nltk
    except ImportError:
        raise DataError("synonym augmentation needs nltk: pip install 'distill[wordnet]'") from None
    return nltk


def debian_wordnet_folder(debian: Path = DEBIAN_WORDNET) -> Path | None:
    """An nltk data folder holding Debian's WordNet 3.0 (built once); None when Debian's files are absent."""
    if not (debian / "index.sense").is_file() or not (debian / "data.noun").is_file():
        return None
    cache = Path(os.environ.get("DISTILL_CACHE_DIR", Path.home() / ".cache" / "distill"))
    root = cache / "nltk_data"
    target = root / "corpora" / "wordnet"
    if not (target / "lexnames").is_file():
        staging = root / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for pattern in ("index.*", "data.*", "*.exc", "cntlist.rev"):
            for file in debian.glob(pattern):
                shutil.copy2(file, staging / file.name)
        lexnames = "".join(f"{i:02d}\t{name}\t{_SYNSET_TYPE[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))
        (staging / "lexnames").write_text(lexnames, encoding="utf-8")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _find_wordnet(nltk: Any) -> None:
    try:
        nltk.data.find("corpora/wordnet")
        return
    except LookupError:
        pass
    folder = debian_wordnet_folder()
    if folder is None:
        raise DataError(
            "synonym augmentation needs WordNet data: python -m nltk.downloader wordnet "
            "(or, offline on Debian/Ubuntu, apt-get install wordnet-base wordnet-sense-index)"
        )
    if str(folder) not in nltk.data.path:
        nltk.data.path.append(str(folder))


class WordNetSynonyms:
    """Up to `top_k` single-word WordNet synonyms per word, in WordNet's sense order."""

    def __init__(self, top_k: int):
        _find_wordnet(_nltk())
        from nlpaug.model.word_dict import WordNet

        self.model = WordNet(lang="eng", is_synonym=True)
        self.top_k = top_k

    def predict(self, word: str) -> list[str]:
        seen = {word.lower()}
        found = []
        for lemma in self.model.predict(word.lower()):
            lemma = lemma.lower()
            if lemma not in seen and is_replaceable(lemma):  # multi-word lemmas ('big_band') have '_'
                seen.add(lemma)
                found.append(lemma)
        return found[: self.top_k]
