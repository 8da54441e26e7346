"""Training loops (Hugging Face Trainer) with resumable checkpoints."""
