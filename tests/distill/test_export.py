"""ONNX export: the graph a standard runtime loads, its check against PyTorch, serving it, and its bad inputs.

The tiny chain exports its trained final student in both formats through the flow and answers through
onnxruntime (tests/ui/test_tiny_chain.py); these tests cover the export itself on tiny random models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.classify import classify_texts
from distill.config import ExportConfig
from distill.export.check import Agreement, _max_abs_diff, compare_generated, generated_features, require
from distill.export.onnx import ExportError, _check_opset, _to_onnx, export_model
from distill.export.runtime import OnnxModel
from distill.models.inference import forward_in_batches
from distill.qa.answer import answer_questions
from tests.cli.runner import cli


@pytest.fixture(scope="module")
def exported_classifier(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny classifier exported once in each format."""
    root = tmp_path_factory.mktemp("exports")
    for fmt in ("onnx", "onnx-int8"):
        export_model(str(tiny_classifier), root / fmt, fmt)
    return {fmt: root / fmt for fmt in ("onnx", "onnx-int8")}


def test_the_graph_has_named_dynamic_axes_and_matches_pytorch(
    exported_classifier: dict[str, Path], tiny_classifier: Path
) -> None:
    folder = exported_classifier["onnx"]
    assert {p.name for p in folder.iterdir()} >= {"model.onnx", "config.json", "tokenizer.json", "export.json"}
    graph = onnx.load(folder / "model.onnx").graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["logits"]
    for tensor in graph.input:  # batch and sequence are symbols, not the example's sizes
        assert all(dim.dim_param and not dim.dim_value for dim in tensor.type.tensor_type.shape.dim)

    # Plain onnxruntime, other batch and sequence sizes than the export's example, against PyTorch.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for texts in (["the film was good"], ["a", "the film was good and the music was great", "bad"]):
        encoded = tokenizer(texts, padding=True, return_tensors="np")
        [logits] = session.run(["logits"], {name: encoded[name] for name in encoded})
        with torch.no_grad():
            expected = model(**{name: torch.from_numpy(value) for name, value in encoded.items()}).logits.numpy()
        np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_int8_is_smaller_and_close(exported_classifier: dict[str, Path], tiny_classifier: Path) -> None:
    fp32, int8 = (OnnxModel(exported_classifier[fmt]) for fmt in ("onnx", "onnx-int8"))
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    # Linear layers and word embeddings are stored as 8 bits (embeddings are most of a small BERT's weights). A tiny
    # model's file is mostly what stays float (its 512 positions' table, scales, the graph), so its ratio says little;
    # MiniLM's is in benchmarks/RESULTS.md. What is quantized is checked instead.
    size = {fmt: (folder / "model.onnx").stat().st_size for fmt, folder in exported_classifier.items()}
    assert size["onnx-int8"] < 0.9 * size["onnx"]
    quantized = [
        tuple(t.dims)
        for t in onnx.load(exported_classifier["onnx-int8"] / "model.onnx").graph.initializer
        if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and t.name.endswith("_quantized")
    ]
    vocabulary = len(AutoTokenizer.from_pretrained(tiny_classifier))
    assert any(dims[0] == vocabulary for dims in quantized if dims)  # the word embedding table
    layers = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).config.num_hidden_layers
    assert sum(1 for dims in quantized if len(dims) == 2) >= 1 + 6 * layers  # words; q, k, v, out, 2 FFN
    assert not any(dims[0] == 2 for dims in quantized if dims)  # the small token-type table stays float
    features = generated_features(AutoTokenizer.from_pretrained(tiny_classifier), rows=32, max_length=32)
    logits = {m.precision: forward_in_batches(m, features, ("logits",), batch_size=8)["logits"] for m in (fp32, int8)}
    assert 0 < np.abs(logits["int8"] - logits["fp32"]).max() < 0.5


def test_a_nan_or_an_infinity_fails_the_fp32_check() -> None:
    reference = {"start_logits": np.array([[1.0, 2.0, -np.inf]]), "end_logits": np.array([[0.5, 0.0, -np.inf]])}
    close = {"start_logits": np.array([[1.0, 2.0005, -np.inf]]), "end_logits": np.array([[0.5, 0.0, -np.inf]])}
    assert _max_abs_diff(reference, close) == pytest.approx(5e-4)  # padding (-inf in both) is not compared
    for bad in (np.nan, np.inf):
        broken = {**close, "end_logits": np.array([[bad, 0.0, -np.inf]])}
        assert _max_abs_diff(reference, broken) == float("inf")
        assert _max_abs_diff(broken, close) == float("inf")  # a broken source fails its export too


def test_an_opset_the_exporter_did_not_build_is_one_line_naming_it(
    exported_classifier: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match=r"^BertX cannot be exported to ONNX opset 19: the exporter built opset 18$"):
        _check_opset(exported_classifier["onnx"] / "model.onnx", 19, "BertX")
    with pytest.raises(ValueError, match="greater than or equal to 18"):
        ExportConfig(opset=17)


def test_the_check_fails_with_its_numbers() -> None:
    limits = ExportConfig(max_abs_diff=1e-3, min_agreement=0.99)
    close = Agreement(rows=60, inputs="eval questions", agreement=0.95, max_abs_diff=2e-4)
    require(close, "onnx", limits, "m")  # fp32 is judged on its logits
    with pytest.raises(ExportError, match=r"agree with PyTorch's on 95\.00% of 60 eval questions \(required: 99"):
        require(close, "onnx-int8", limits, "m")
    far = Agreement(rows=8, inputs="eval sentences", agreement=1.0, max_abs_diff=0.25)
    with pytest.raises(ExportError, match=r"differ from PyTorch's by up to 0\.25 on 8 eval sentences"):
        require(far, "onnx", limits, "m")
    require(far, "onnx-int8", limits, "m")  # int8 is judged on its predictions


def test_exported_models_answer_and_classify_as_pytorch_does(
    exported_classifier: dict[str, Path], tiny_classifier: Path, tiny_qa_model: Path, tmp_path: Path
) -> None:
    texts = ["the film was good", "bad music", "a long and winding story about a dog"]
    expected = classify_texts(str(tiny_classifier), None, texts)
    got = classify_texts(exported_classifier["onnx"], None, texts)
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    assert [g["score"] for g in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)

    _, figures = export_model(str(tiny_qa_model), tmp_path / "qa", "onnx", check=_generated_check)
    assert figures["check_agreement"] == 1.0 and figures["check_max_abs_diff"] < 1e-4
    context = "the red fox lives in the old mill and eats honey. " * 30  # several windows
    pairs = [("what does the fox eat?", context), ("where does the fox live?", "in the mill")]
    expected_answers = answer_questions(str(tiny_qa_model), None, pairs, max_seq_length=64, doc_stride=16)
    got_answers = answer_questions(tmp_path / "qa", None, pairs, max_seq_length=64, doc_stride=16)
    assert [a["answer"] for a in got_answers] == [a["answer"] for a in expected_answers]
    assert [a["null_odds"] for a in got_answers] == pytest.approx([a["null_odds"] for a in expected_answers], abs=1e-4)


def _generated_check(reference, tokenizer, exported):  # noqa: ANN001, ANN202
    agreement = compare_generated(reference, exported, tokenizer, exported.task, batch_size=16)
    return agreement.metrics()


class _DataDependent(torch.nn.Module):
    """Python control flow on a tensor's value: what torch.export cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_dict: bool = True) -> dict:
        hidden = self.embed(input_ids)
        if hidden.sum().item() > 0:
            hidden = -hidden
        return {"logits": hidden.mean(dim=1)}


def test_an_architecture_that_cannot_be_exported_is_one_line_naming_it(tiny_tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(ExportError) as raised:
        _to_onnx(_DataDependent(), tiny_tokenizer, "classification", tmp_path / "model.onnx", 18)
    message = str(raised.value)
    assert message.startswith("_DataDependent cannot be exported to ONNX opset 18: ")
    assert "\n" not in message and "\x1b" not in message


def test_cli_exports_and_refuses_bad_input(
    tiny_qa_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A check that cannot pass: exit 2, one line with the numbers, nothing written.
    target = tmp_path / "out"
    argv = ["export", str(tiny_qa_model), str(target), "--quantize", "int8", "--min-agreement", "1", "--max-abs-diff"]
    code, _, err = cli([*argv, "1e-9"], monkeypatch, capsys)
    if code == 0:  # int8 matched every generated input: then the logits differ, which fp32's check would catch
        pytest.fail("int8 reproduced every prediction of a random model; the failure path was not exercised")
    assert code == 2 and err.count("\n") == 1 and "failed its check" in err and "%" in err, err
    assert not target.exists() and not list(tmp_path.glob(".out*"))

    # Not a model: one line naming it.
    code, _, err = cli(["export", str(tmp_path), str(tmp_path / "x")], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and str(tmp_path) in err

    # A folder that holds something else is never replaced.
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    code, _, err = cli(["export", str(tiny_qa_model), str(keep)], monkeypatch, capsys)
    assert code == 2 and "not empty" in err and (keep / "notes.txt").read_text() == "mine"
