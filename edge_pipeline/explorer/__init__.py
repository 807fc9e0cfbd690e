"""Model Explorer over a build's artifact with its overlays: the checks (`checks`), then a local server (`server`)."""
