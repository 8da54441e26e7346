"""The artifact store: content fingerprints, one directory per stage output with a manifest, attempt timing, and
an object-store backend (s3://) whose stages each node reads and writes through a local cache."""
