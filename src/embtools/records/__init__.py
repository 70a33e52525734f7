"""Records and files: what every command reads and writes.

In: JSONL lines (files or stdin; plain, gzip or zstd), Parquet rows, data sets on the Hugging Face hub
(`hf://datasets/...`), and the data sets users bring (BEIR folders, STS and classification files).
- `jsonl`: streaming records in and out, line numbers in errors, `--rejects` sinks, the output of every command.
- `formats`: which format an input is (its first bytes and its name), decompression, Parquet rows as JSON records.
- `hub_datasets`: `hf://datasets/ORG/NAME[@REV][/PATH | :CONFIG/SPLIT]` -> the repo files it names, downloaded into
  the Hugging Face cache (through models.hub), for the readers above.
- `hub_beir`: a BEIR data set on the hub (BeIR's or mteb's layout) -> a local BEIR folder of links to its cached files.
- `atomic`: outputs that appear whole or not at all (temporary name, fsync, rename).
- `examples`: the example record (query, positive, negative, instruction): the one check of its fields.
- `embeddings`: embedding records, vectors as JSON lists or base64 float32.
- `embedding_files`: embeddings as files (JSONL, npy + ids + meta, Parquet), written chunk by chunk, read in batches.
- `vector_precision`: Matryoshka truncation and the stored precisions (float32, float16, int8, ubinary).
- `datasets`: the one reader of each data format (STS, BEIR retrieval, classification), for evaluation,
  labeled data, decontamination and mining alike.
- `text_keys`: "the same text" for the filter and the loss alike: normalized keys, word counts, 64-bit digests.
Out: validated Python dicts, and files written atomically.
"""
