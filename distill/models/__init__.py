"""Model loading, saving and construction."""
