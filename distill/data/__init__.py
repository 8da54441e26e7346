"""Dataset readers: SQuAD-format QA and sentence classification, from local files or the hub."""
