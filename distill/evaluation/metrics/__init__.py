"""Task metrics: official SQuAD EM/F1 and classification accuracy."""
