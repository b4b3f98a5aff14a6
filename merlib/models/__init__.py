"""Models take tensors; they know nothing of manifests or training."""
