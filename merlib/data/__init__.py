"""Corpora, manifests and folds. Nothing in here needs a torch model."""
