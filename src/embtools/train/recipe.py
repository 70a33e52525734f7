"""The training recipe's defaults, once: the paper's (E5-mistral, App. A) where it speaks, ours where it is silent.

A module that imports nothing heavy, so `emb-train --help` shows these values without torch, and `TrainConfig`,
`LoraSettings` and `InfoNCELoss` default to the same numbers the command line does.
"""

TEMPERATURE = 0.02  # InfoNCE temperature (paper)
BATCH_SIZE = 2048  # examples per contrastive batch over all processes (paper)
MINI_BATCH_SIZE = 16  # texts per GradCache forward: bounds memory, not the batch (ours)
LEARNING_RATE = 1e-4  # peak rate for a 7B model (paper); small models want more
WARMUP_STEPS = 100  # linear warm-up, then linear decay (paper)
WEIGHT_DECAY = 0.1  # AdamW, on matrices only (paper)
SEED = 42
MAX_LENGTH = 512  # tokens per text (paper)
LORA_RANK = 16  # (paper)
LORA_ALPHA = 32.0  # as intfloat/e5-mistral-7b-instruct's adapter
LORA_DROPOUT = 0.1  # as intfloat/e5-mistral-7b-instruct's adapter
