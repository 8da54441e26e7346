"""The artifact store: content fingerprints, one directory per stage output with a manifest, and attempt timing."""
