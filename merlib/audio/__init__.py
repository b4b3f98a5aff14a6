"""Audio front end: reading, log-mel features, SpecAugment, datasets."""
