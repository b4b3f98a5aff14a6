"""merlib: a workbench for multimodal (speech + text) emotion recognition.

Reproduces Padi et al. (2022): a speaker-recognition ResNet34 transferred to emotion
recognition, a fine-tuned BERT text classifier and late fusion of their log-softmax scores,
evaluated on IEMOCAP with leave-one-session-out cross-validation.
"""

import os

__version__ = "0.1.0"

# Nothing may reach a model hub at run time (text models load from local directories only). Set
# here, before anything imports huggingface_hub, which reads it once at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The paper's 4-class protocol, in the column order of every scores file and confusion matrix.
EMOTIONS = ("ang", "hap", "neu", "sad")
