"""Per-framework helpers the stages need (fingerprint, param count, eager reference run)."""
