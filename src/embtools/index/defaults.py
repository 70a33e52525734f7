"""The index stage's defaults, in a module that imports nothing heavy: `emb-index --help` shows them without faiss."""

DEFAULT_FACTORY = "Flat"
DEFAULT_TRAIN_SIZE = 100_000
DEFAULT_EF_SEARCH = 64
ADD_BATCH, SEARCH_BATCH = 4096, 1024
