"""Plugin contract tests: every registered plugin through the same checks."""
