"""SQuAD v1.1 / v2.0 in the official JSON format: read, validate, split by article, flatten.

The nested official structure (`data[].paragraphs[].qas[]`) is kept as the source of
truth, because scoring, augmentation and by-article splits all work on it. `examples()`
flattens it into the Hugging Face `squad` schema that feature preparation consumes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from distill.config import DataSource
from distill.data.sources import is_local, load_hub_split, local_path
from distill.errors import DataError
from distill.io import read_json


@dataclass(frozen=True)
class SquadDataset:
    """Validated SQuAD articles plus where they came from (for error messages and fingerprints)."""

    articles: list[dict[str, Any]]
    source: str
    version: str | None = None
    _question_count: int = field(default=0, compare=False)

    @property
    def num_questions(self) -> int:
        return self._question_count

    @property
    def titles(self) -> list[str]:
        return [article.get("title", "") for article in self.articles]

    @property
    def has_unanswerable(self) -> bool:
        return any(not qa["answers"] for qa in self.questions())

    def questions(self) -> Iterator[dict[str, Any]]:
        for article in self.articles:
            for paragraph in article["paragraphs"]:
                yield from paragraph["qas"]

    def examples(self) -> list[dict[str, Any]]:
        """Flat rows in the HF `squad`/`squad_v2` schema, in file order."""
        rows = []
        for article in self.articles:
            title = article.get("title", "")
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    rows.append(
                        {
                            "id": qa["id"],
                            "title": title,
                            "context": context,
                            "question": qa["question"],
                            "answers": {
                                "text": [a["text"] for a in qa["answers"]],
                                "answer_start": [a["answer_start"] for a in qa["answers"]],
                            },
                        }
                    )
        return rows

    def to_json(self) -> dict[str, Any]:
        """The official file layout, for writing augmented or split data back out."""
        return {"version": self.version or ("v2.0" if self.has_unanswerable else "1.1"), "data": self.articles}

    def select(self, articles: list[dict[str, Any]], suffix: str) -> SquadDataset:
        return _counted(SquadDataset(articles, f"{self.source}{suffix}", self.version))


def _counted(dataset: SquadDataset) -> SquadDataset:
    count = sum(len(p["qas"]) for a in dataset.articles for p in a["paragraphs"])
    object.__setattr__(dataset, "_question_count", count)
    return dataset


# --------------------------------------------------------------------------- reading


def read_squad(
    source: DataSource | str, *, check_answer_spans: bool = True, default_split: str = "validation"
) -> SquadDataset:
    """Read SQuAD from a `.json`/`.json.gz` file or a hub dataset id (`squad`, `squad_v2`).

    `check_answer_spans` verifies `context[answer_start:answer_start+len(text)] == text`;
    training needs it, scoring does not (the official script ignores `answer_start`).
    """
    source = DataSource(path=source) if isinstance(source, str) else source
    if is_local(source.path):
        path = local_path(source)
        return parse_squad(read_json(path), source=str(path), check_answer_spans=check_answer_spans)
    rows = load_hub_split(source, default_split)
    return from_hub_rows(
        rows, source=f"{source.path}[{source.split or default_split}]", check_answer_spans=check_answer_spans
    )


def parse_squad(obj: Any, *, source: str, check_answer_spans: bool = True) -> SquadDataset:
    """Validate the official nested layout; errors name the file and the JSON path."""
    if not isinstance(obj, dict) or "data" not in obj:
        raise DataError(f"{source}: not SQuAD JSON: expected an object with a 'data' list")
    articles = _expect(obj["data"], list, source, "data")
    seen_ids: set[str] = set()
    for a_index, article in enumerate(articles):
        where = f"data[{a_index}]"
        _expect(article, dict, source, where)
        paragraphs = _expect(_require(article, "paragraphs", source, where), list, source, f"{where}.paragraphs")
        for p_index, paragraph in enumerate(paragraphs):
            p_where = f"{where}.paragraphs[{p_index}]"
            _expect(paragraph, dict, source, p_where)
            context = _expect(_require(paragraph, "context", source, p_where), str, source, f"{p_where}.context")
            qas = _expect(_require(paragraph, "qas", source, p_where), list, source, f"{p_where}.qas")
            for q_index, qa in enumerate(qas):
                q_where = f"{p_where}.qas[{q_index}]"
                _check_question(qa, context, source, q_where, seen_ids, check_answer_spans)
    dataset = _counted(SquadDataset(articles, source, obj.get("version")))
    if dataset.num_questions == 0:
        raise DataError(f"{source}: dataset is empty: no questions found")
    return dataset


def _check_question(
    qa: Any, context: str, source: str, where: str, seen_ids: set[str], check_answer_spans: bool
) -> None:
    _expect(qa, dict, source, where)
    qid = _require(qa, "id", source, where)
    if not isinstance(qid, str) or not qid:
        raise DataError(f"{source}: {where}.id: expected a non-empty string, got {qid!r}")
    if qid in seen_ids:
        raise DataError(f"{source}: {where}: duplicate question id {qid!r}")
    seen_ids.add(qid)
    _expect(_require(qa, "question", source, where), str, source, f"{where}.question")
    impossible = bool(qa.get("is_impossible", False))
    answers = qa.get("answers", [] if impossible else None)
    if answers is None:
        raise DataError(f"{source}: {where}: missing 'answers' (question {qid})")
    _expect(answers, list, source, f"{where}.answers")
    if impossible and answers:
        raise DataError(f"{source}: question {qid}: is_impossible is true but it has answers")
    qa.setdefault("answers", answers)
    for key in ("answers", "plausible_answers"):
        for a_index, answer in enumerate(qa.get(key) or []):
            _check_answer(answer, context, source, f"{where}.{key}[{a_index}]", qid, check_answer_spans)


def _check_answer(answer: Any, context: str, source: str, where: str, qid: str, check_span: bool) -> None:
    _expect(answer, dict, source, where)
    text = _expect(_require(answer, "text", source, where), str, source, f"{where}.text")
    start = _require(answer, "answer_start", source, where)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise DataError(f"{source}: {where}.answer_start: expected a non-negative integer, got {start!r}")
    if check_span and context[start : start + len(text)] != text:
        found = context[start : start + len(text)]
        raise DataError(
            f"{source}: question {qid}: answer_start {start} does not match answer {text!r} "
            f"(context has {found!r} there)"
        )


def _require(obj: dict[str, Any], key: str, source: str, where: str) -> Any:
    if key not in obj:
        raise DataError(f"{source}: {where}: missing '{key}'")
    return obj[key]


def _expect(value: Any, kind: type, source: str, where: str) -> Any:
    if not isinstance(value, kind):
        raise DataError(f"{source}: {where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def from_hub_rows(rows: Any, *, source: str, check_answer_spans: bool = True) -> SquadDataset:
    """Rebuild the nested layout from flat hub rows (grouped by title, then context, in order)."""
    articles: dict[str, dict[str, Any]] = {}
    paragraphs: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        title = row.get("title", "") or ""
        article = articles.setdefault(title, {"title": title, "paragraphs": []})
        key = (title, row["context"])
        if key not in paragraphs:
            paragraphs[key] = {"context": row["context"], "qas": []}
            article["paragraphs"].append(paragraphs[key])
        answers = row.get("answers") or {"text": [], "answer_start": []}
        paragraphs[key]["qas"].append(
            {
                "id": str(row["id"]),
                "question": row["question"],
                "answers": [
                    {"text": t, "answer_start": int(s)}
                    for t, s in zip(answers["text"], answers["answer_start"], strict=True)
                ],
            }
        )
    data = {"version": None, "data": list(articles.values())}
    return parse_squad(data, source=source, check_answer_spans=check_answer_spans)


# --------------------------------------------------------------------------- splitting


def select_articles(dataset: SquadDataset, selection: int | list[str] | None, *, from_end: bool) -> SquadDataset:
    """The first (or last) N articles, or the articles with the given titles, in file order."""
    if selection is None:
        return dataset
    if isinstance(selection, int):
        total = len(dataset.articles)
        if selection > total:
            raise DataError(f"{dataset.source}: asked for {selection} articles but the file has {total}")
        chosen = dataset.articles[total - selection :] if from_end else dataset.articles[:selection]
        suffix = f"[last {selection} articles]" if from_end else f"[first {selection} articles]"
        return dataset.select(chosen, suffix)
    wanted = set(selection)
    missing = [title for title in selection if title not in set(dataset.titles)]
    if missing:
        raise DataError(f"{dataset.source}: no article titled {missing[0]!r}")
    chosen = [article for article in dataset.articles if article.get("title", "") in wanted]
    return dataset.select(chosen, f"[{len(chosen)} named articles]")


def split_by_article(
    dataset: SquadDataset, train_articles: int | list[str] | None, eval_articles: int | list[str] | None
) -> tuple[SquadDataset, SquadDataset]:
    """Deterministic by-article split of one file: train from the front, eval from the back, never overlapping."""
    train = select_articles(dataset, train_articles, from_end=False)
    evaluation = select_articles(dataset, eval_articles, from_end=True)
    check_disjoint(
        evaluation, train, "train and eval articles", "evaluation on training articles would overstate accuracy"
    )
    return train, evaluation


def check_disjoint(dataset: SquadDataset, other: SquadDataset, names: str, consequence: str) -> None:
    """One-line DataError when `dataset` shares questions (by id, unique per file) with `other`.

    `names` says which two selections overlap, `consequence` why that is wrong.
    """
    other_ids = {qa["id"] for qa in other.questions()}
    shared = [
        article.get("title", "")
        for article in dataset.articles
        if any(qa["id"] in other_ids for paragraph in article["paragraphs"] for qa in paragraph["qas"])
    ]
    if shared:
        raise DataError(
            f"{dataset.source}: {names} overlap ({len(shared)} shared articles, e.g. {shared[0]!r}); {consequence}"
        )


def cap_questions(dataset: SquadDataset, limit: int | None) -> SquadDataset:
    """Keep the first `limit` questions in file order (smoke runs); paragraphs left empty are dropped."""
    if limit is None or limit >= dataset.num_questions:
        return dataset
    remaining = limit
    articles = []
    for article in dataset.articles:
        kept_paragraphs = []
        for paragraph in article["paragraphs"]:
            if remaining <= 0:
                break
            qas = paragraph["qas"][:remaining]
            remaining -= len(qas)
            kept_paragraphs.append({**paragraph, "qas": qas})
        if kept_paragraphs:
            articles.append({**article, "paragraphs": kept_paragraphs})
        if remaining <= 0:
            break
    return dataset.select(copy.deepcopy(articles), f"[first {limit} questions]")
