"""Index: embedding records in, a FAISS index folder out; queries in, ranked hits out (emb-index).

- `defaults`: the factory string, training size and batch sizes, importable without faiss (for `--help`).
- `embedding_checks`: decodable vectors, one dimension, unique ids, before anything reaches faiss.
- `inputs`: JSONL records, npy and Parquet files, several one after another, through those checks.
- `binary_index`: Hamming indexes for ubinary vectors (factory strings, scores, queries).
- `folder`: the index folder's files, its index.json and the checks that refuse a damaged one.
- `faiss_setup`: faiss index objects from factory strings, training, search parameters, GPU copies.
- `vector_index`: build, append, load and search.
"""
