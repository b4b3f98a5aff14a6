"""Training: one loop (loop.py) used by speaker pretraining, speech transfer and text fine-tuning."""
