"""emb-filter's defaults, once, in a module that imports nothing heavy: `emb-filter --help` shows them without numpy,
and the settings classes of each check default to the same values the command line does."""

from embtools.records.datasets import EVALUATION_SPLIT

NGRAM = 13  # words in a shared run that counts as contamination (the paper's App. B check)
MIN_CONTAMINATION_WORDS = 5  # evaluation texts shorter than this never count
DECONTAMINATE_SPLIT = EVALUATION_SPLIT  # the qrels split whose queries and judged documents are kept out
NEAR_DUP_THRESHOLD = 0.8  # estimated Jaccard similarity of word 3-shingles
NUM_PERM = 64  # MinHash permutations
LENGTH_TOLERANCE = 0.3  # slack on every asked length
SHORT_MAX_WORDS = 40  # the longest short-short text, before the tolerance
LANGUAGE_CONFIDENCE = 0.9  # identifier confidence from which another language is a reject
LABELED_SPLIT = "train"  # the qrels split --from-beir reads
MIN_STS_SCORE = 4.0  # lowest STS score --from-sts keeps as a positive pair
NEGATIVE_RANKS = (10, 100)  # the rank window mined negatives are picked from
NEGATIVE_MARGIN = 0.95  # a mined negative scores below MARGIN x the positive (NV-Retriever TopK-PercPos)
MINING_MAX_LENGTH = 256  # tokens per text when mining
