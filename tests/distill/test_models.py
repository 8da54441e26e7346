"""Model references, safe loading and the tiny random-BERT factory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from distill.errors import ModelError
from distill.models.loading import load_model, load_tokenizer, model_task, resolve_model, save_model


def test_short_name_resolves_to_packaged_minilm(minilm_path: str) -> None:
    ref = resolve_model("minilm")
    assert ref.local and ref.location == minilm_path
    assert (Path(ref.location) / "model.safetensors").is_file()


def test_references(tmp_path: Path) -> None:
    assert resolve_model("google/bert_uncased_L-4_H-256_A-4").local is False
    with pytest.raises(ModelError, match=r"model './missing': no such model folder"):
        resolve_model("./missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_unreachable_hub_id_says_so_and_suggests_a_path() -> None:
    with pytest.raises(ModelError, match="not a local path .*offline mode is set; pass a local path"):
        load_model("some-org/not-cached-model", "qa")


def test_tiny_model_round_trip(tiny_qa_model: Path, tmp_path: Path) -> None:
    model, fresh = load_model(str(tiny_qa_model), "qa")
    assert fresh == [] and model.config.num_hidden_layers == 2
    tokenizer = load_tokenizer(str(tiny_qa_model))
    assert tokenizer.is_fast and tokenizer.tokenize("the red fox") == ["the", "red", "fox"]
    saved = save_model(model, tokenizer, tmp_path / "copy")
    assert (saved / "model.safetensors").is_file() and not list(saved.glob("*.bin"))
    again, _ = load_model(str(saved), "qa")
    batch = tokenizer(["where does the fox live?"], ["the fox lives in the cave."], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(model.eval()(**batch).start_logits, again.eval()(**batch).start_logits)
    assert model_task(str(saved)) == "qa"


def test_new_head_is_reported(tiny_qa_model: Path) -> None:
    model, fresh = load_model(str(tiny_qa_model), "classification", num_labels=3)
    assert model.config.num_labels == 3
    assert any(name.startswith("classifier") for name in fresh)


def test_pickle_weights_need_opt_in(tiny_qa_model: Path, tmp_path: Path) -> None:
    model, _ = load_model(str(tiny_qa_model), "qa")
    folder = tmp_path / "pickled"
    folder.mkdir()
    model.config.save_pretrained(folder)
    # transformers 5 only writes safetensors; a legacy pickle checkpoint is a plain torch.save.
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="no .safetensors weights .* allow_pickle_weights: true"):
        load_model(str(folder), "qa")
    loaded, _ = load_model(str(folder), "qa", allow_pickle_weights=True)
    assert loaded.config.hidden_size == model.config.hidden_size


def test_truncated_weights_name_the_model(tiny_qa_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_qa_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match=f"model '{broken}': cannot load"):
        load_model(str(broken), "qa")
