"""mteb tasks for emb-eval: local data as mteb custom tasks, and the installed mteb's own tasks by name.

Custom tasks follow mteb 2.26's offline recipe: subclass the AbsTask, give a TaskMetadata whose dataset is local,
fill `self.dataset` in `load_data()`. Classification runs through mteb's AbsTaskClassification unchanged (logistic
regression, max_iter 100, 8 samples per label, 10 experiments, seed 42), and bitext mining through its
AbsTaskBitextMining (nearest neighbour by cosine), so their numbers are mteb's by construction.
"""

from __future__ import annotations

from typing import Any

from embtools.errors import EmbtoolsError
from embtools.records.datasets import BitextData, ClassificationData, RetrievalData

# What a local file or folder is taken to be written in (its result file says so; mteb needs a language).
LOCAL_LANGUAGES = ("eng-Latn",)


def local_metadata(name: str, task_type: str, main_score: str, split: str, revision: str, path: str = "local"):
    """A TaskMetadata for data on disk (English text, one `default` subset, one evaluated split)."""
    from mteb.abstasks.task_metadata import TaskMetadata

    return TaskMetadata(
        name=name, type=task_type, main_score=main_score, description=f"{task_type} data from {path}",
        reference=None, dataset={"path": path, "revision": revision}, category="t2t", eval_splits=[split],
        eval_langs=list(LOCAL_LANGUAGES), modalities=["text"], date=None, domains=None, task_subtypes=None,
        license=None, annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation=None)


def preloaded_task(base: type, metadata, dataset) -> Any:
    """An instance of an mteb task class whose data is `dataset`, already in memory (load_data does nothing)."""

    class LocalTask(base):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.data_loaded = True

    LocalTask.metadata = metadata
    task = LocalTask()
    task.dataset = dataset
    task.data_loaded = True
    return task


def classification_task(data: ClassificationData, metadata, split: str):
    """An mteb AbsTaskClassification over train/test texts and labels, its data already loaded."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification

    return preloaded_task(AbsTaskClassification, metadata, DatasetDict({
        "train": Dataset.from_dict({"text": data.train_texts, "label": data.train_labels}),
        split: Dataset.from_dict({"text": data.test_texts, "label": data.test_labels}),
    }))


def bitext_task(data: BitextData, metadata, split: str):
    """An mteb AbsTaskBitextMining over aligned sentences (`sentence1`, `sentence2` columns), its data loaded."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining

    return preloaded_task(AbsTaskBitextMining, metadata, DatasetDict({
        split: Dataset.from_dict({"sentence1": data.sentences1, "sentence2": data.sentences2})}))


def retrieval_task(data: RetrievalData, metadata, split: str):
    """An mteb AbsTaskRetrieval over a loaded BEIR folder (what mteb itself would evaluate; used by bench/)."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    return preloaded_task(AbsTaskRetrieval, metadata, {"default": {split: {
        "corpus": Dataset.from_list([{"id": i, "text": t} for i, t in data.corpus.items()]),
        "queries": Dataset.from_list([{"id": i, "text": t} for i, t in data.queries.items()]),
        "relevant_docs": data.qrels, "top_ranked": None}}})


def run_task(task, model, split: str) -> dict[str, dict[str, Any]]:
    """mteb's scores of one split, per subset: {subset: {metric: value, "main_score": ...}}."""
    return dict(task.evaluate(model, split, encode_kwargs={"batch_size": 64}))


def load_task_data(task) -> None:
    """Load an mteb task's data (a no-op for a local task) from the Hugging Face cache, downloaded on first use
    unless offline (`--offline` sets HF_HUB_OFFLINE and HF_DATASETS_OFFLINE); one line saying how to get it if not."""
    if task.data_loaded:
        return
    name = task.metadata.name
    try:
        task.load_data()
    except Exception as exc:  # datasets/hub raise many kinds; any of them means: not available here
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise EmbtoolsError(
            f"mteb:{name}: its data ({task.metadata.dataset['path']}) is not in the local Hugging Face cache "
            f"({reason}); on a connected machine run `python -c \"import mteb; mteb.get_task('{name}').load_data()\"` "
            "and copy ~/.cache/huggingface here (or set HF_HOME), or give emb-eval a local file or folder instead"
        ) from None
