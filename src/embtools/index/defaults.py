"""The index stage's defaults, in a module that imports nothing heavy: `emb-index --help` shows them without faiss."""

DEFAULT_FACTORY = "Flat"
DEFAULT_TRAIN_SIZE = 100_000
DEFAULT_EF_SEARCH = 64
ADD_BATCH, SEARCH_BATCH = 4096, 1024
DEFAULT_MIN_RECALL = 0.95  # --max-memory: recall@10 against exact search the chosen index must reach
DEFAULT_TUNE_SAMPLE, DEFAULT_TUNE_QUERIES = 20_000, 200
