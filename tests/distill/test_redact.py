"""Secret redaction: which keys count as secrets, credentials inside strings, configs' JSON form, log lines."""

from __future__ import annotations

import logging

import pytest

from distill.config import parse_config
from distill.data.task_data import source_fingerprint
from distill.redact import MASK, install_log_redaction, is_secret_key, redact, redact_text


@pytest.mark.parametrize(
    "name",
    "hf_token HF_TOKEN token api_key apiKey x-api-key password db_password passwd client_secret "
    "AWS_SECRET_ACCESS_KEY access_key private_key authorization credentials".split(),
)
def test_secret_key_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    "key cache_key sort_key key_storage keys monkey max_tokens num_tokens token_type_ids mask_token pad_token "
    "tokenizer keep_original secretary_name label_column".split(),
)
def test_harmless_key_names(name: str) -> None:
    assert not is_secret_key(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://bob:hunter2@data.example.com:8443/squad/dev.json?x=1",
            "https://***@data.example.com:8443/squad/dev.json?x=1",
        ),
        ("s3://AKIAXYZ:wJalr@bucket/key.json", "s3://***@bucket/key.json"),
        ("https://ghp_abc@github.com/org/repo", "https://***@github.com/org/repo"),
        ("https://host/x?access_token=abc123&page=2", "https://host/x?access_token=***&page=2"),
        ("set HF_TOKEN=hf_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa then", "set HF_TOKEN=*** then"),
        ("token hf_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123 leaked", f"token {MASK} leaked"),
        # left alone: nothing secret in them
        ("synthetic:qa", "synthetic:qa"),
        ("/data/squad/dev-v2.0.json.gz", "/data/squad/dev-v2.0.json.gz"),
        ("mail bob@example.com", "mail bob@example.com"),
        ("https://huggingface.co/bert-base-uncased", "https://huggingface.co/bert-base-uncased"),
        ("cache_key=abc sort=1", "cache_key=abc sort=1"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_nested_values() -> None:
    value = {
        "hf_token": "hf_realrealrealrealrealreal",
        "cache_key": "train-abc123",
        "nested": {"api_key": 12345, "list": [{"password": ["a", "b"]}, "https://u:p@h/x", 3, None]},
        "use_auth_token": True,  # a flag, not a secret
        "client_secret": None,  # absent
        "mask_token": "[MASK]",
        "pair": ("ftp://me:pw@host/f", "plain"),
    }
    assert redact(value) == {
        "hf_token": MASK,
        "cache_key": "train-abc123",
        "nested": {"api_key": MASK, "list": [{"password": MASK}, "https://***@h/x", 3, None]},
        "use_auth_token": True,
        "client_secret": None,
        "mask_token": "[MASK]",
        "pair": ("ftp://***@host/f", "plain"),
    }
    assert value["hf_token"].startswith("hf_")  # a copy: the input is untouched


def _config(password: str):  # noqa: ANN202
    return parse_config(
        {
            "name": "x",
            "data": {"task": "qa", "eval": f"https://bob:{password}@data.example.com/squad/dev"},
            "teacher": {"model": "tiny-bert"},
            "augmentation": {"mlm": f"https://bob:{password}@models.example.com/mlm"},
        }
    )


def test_config_json_is_redacted_but_fingerprints_see_real_values() -> None:
    one, two = _config("hunter2"), _config("swordfish")
    dumped = one.model_dump(mode="json")
    assert dumped["data"]["eval"]["path"] == "https://***@data.example.com/squad/dev"
    assert dumped["augmentation"]["mlm"] == "https://***@models.example.com/mlm"
    assert "hunter2" not in one.model_dump_json() and "hunter2" not in str(one.augmentation.output_settings(1))
    assert dumped == two.model_dump(mode="json")
    # Python-mode dumps keep the real value, and content fingerprints (cache keys) hash those.
    assert one.model_dump()["data"]["eval"]["path"].startswith("https://bob:hunter2@")
    assert source_fingerprint(one.data.eval) != source_fingerprint(two.data.eval)


def test_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    with caplog.at_level(logging.INFO, logger="distill"):
        logging.getLogger("distill").info("reading %s", "https://bob:hunter2@data.example.com/dev")
    assert caplog.records[-1].getMessage() == "reading https://***@data.example.com/dev"
