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


def test_a_head_for_another_number_of_labels_is_a_user_error(tiny_classifier: Path) -> None:
    with pytest.raises(ModelError, match="different number of labels than the data"):
        load_model(str(tiny_classifier), "classification", num_labels=3)


def test_saved_tokenizer_files_do_not_record_how_the_tokenizer_was_found(tiny_qa_model: Path, tmp_path: Path) -> None:
    """Loaded offline or online, from a folder or the cache, a model saves the same bytes (cache keys hash them)."""
    import json

    model, _ = load_model(str(tiny_qa_model), "qa")
    tokenizer = load_tokenizer(str(tiny_qa_model))
    tokenizer.init_kwargs["local_files_only"] = True  # as transformers records a load from the cache
    save_model(model, tokenizer, tmp_path / "saved")
    settings = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert not {"local_files_only", "is_local"} & set(settings)


def test_the_scorer_reads_a_named_head_by_name_and_sizes_a_generic_one(tiny_classifier: Path, tmp_path: Path) -> None:
    from distill.evaluation.scorer import load_scorer

    options = {"batch_size": 4, "precision": "fp32"}
    # LABEL_0/LABEL_1 (generic): the data's labels, in order.
    assert load_scorer(str(tiny_classifier), ["neg", "pos"], **options).label_list == ["neg", "pos"]
    model, _ = load_model(str(tiny_classifier), "classification", id2label={0: "pos", 1: "neg"})
    save_model(model, load_tokenizer(str(tiny_classifier)), tmp_path / "named")
    named = str(tmp_path / "named")
    # A named head keeps its own order, and a file may hold only some of its labels.
    assert load_scorer(named, ["neg", "pos"], **options).label_list == ["pos", "neg"]
    assert load_scorer(named, ["neg"], **options).label_list == ["pos", "neg"]
    with pytest.raises(ModelError, match=r"the data also has \['meh'\]"):
        load_scorer(named, ["meh", "pos"], **options)
