"""Reading, pairing, checking, normalising, patch sampling and augmentation (no torch here)."""
