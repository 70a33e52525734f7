"""E5 task types and instructions: the one place the query template, the six task types, the instruction E5-mistral
was evaluated with on each task and the rules for a task that is not listed live."""

from __future__ import annotations

import re

QUERY_TEMPLATE = "Instruct: {instruction}\nQuery: {text}"

# The paper's six groups of synthetic data (the `task_type` of task and example records).
TASK_TYPES = ("short-long", "long-short", "short-short", "long-long", "sts", "bitext")
TWO_STEP_TYPES = TASK_TYPES[:4]  # brainstorm first, then one example per task
ONE_STEP_TYPES = TASK_TYPES[4:]  # no brainstorm step

# The fixed instructions of the two symmetric groups (paper, Table 16); E5-mistral also evaluates every MTEB task of
# these types with them (Table 15), and Summarization with one of its own.
STS_INSTRUCTION = "Retrieve semantically similar text."
BITEXT_INSTRUCTION = "Retrieve parallel sentences."
SUMMARIZATION_INSTRUCTION = "Given a news summary, retrieve other semantically similar summaries"
CQADUPSTACK_INSTRUCTION = ("Given a question, retrieve detailed question descriptions from Stackexchange that are "
                           "duplicates to the given question")  # every CQADupstack*Retrieval task

# The instruction of a task that Table 15 does not list, by mteb task type (paper, A.9).
TYPE_INSTRUCTIONS = {"STS": STS_INSTRUCTION, "Summarization": SUMMARIZATION_INSTRUCTION,
                     "BitextMining": BITEXT_INSTRUCTION}

# The evaluation instructions of E5-mistral for MTEB, by task name (paper, Table 15; the microsoft/unilm e5 code,
# `get_task_def_by_task_name_and_type`, which adds the C-MTEB tasks). Credit: Wang et al., "Improving Text Embeddings
# with Large Language Models", arXiv:2401.00368, CC BY 4.0. mteb ships the same strings as its task prompts.
_CLASSIFICATION = {
    "AmazonCounterfactualClassification":
        "Classify a given Amazon customer review text as either counterfactual or not-counterfactual",
    "AmazonPolarityClassification": "Classify Amazon reviews into positive or negative sentiment",
    "AmazonReviewsClassification": "Classify the given Amazon review into its appropriate rating category",
    "Banking77Classification": "Given a online banking query, find the corresponding intents",
    "EmotionClassification": "Classify the emotion expressed in the given Twitter message into one of the six "
                             "emotions: anger, fear, joy, love, sadness, and surprise",
    "ImdbClassification": "Classify the sentiment expressed in the given movie review text from the IMDB dataset",
    "MassiveIntentClassification": "Given a user utterance as query, find the user intents",
    "MassiveScenarioClassification": "Given a user utterance as query, find the user scenarios",
    "MTOPDomainClassification": "Classify the intent domain of the given utterance in task-oriented conversation",
    "MTOPIntentClassification": "Classify the intent of the given utterance in task-oriented conversation",
    "ToxicConversationsClassification": "Classify the given comments as either toxic or not toxic",
    "TweetSentimentExtractionClassification":
        "Classify the sentiment of a given tweet as either positive, negative, or neutral",
    # C-MTEB
    "TNews": "Classify the fine-grained category of the given news title",
    "IFlyTek": "Given an App description text, find the appropriate fine-grained category",
    "MultilingualSentiment": "Classify sentiment of the customer review into positive, neutral, or negative",
    "JDReview": "Classify the customer review for iPhone on e-commerce platform into positive or negative",
    "OnlineShopping": "Classify the customer review for online shopping into positive or negative",
    "Waimai": "Classify the customer review from a food takeaway platform into positive or negative",
}
_CLUSTERING = {
    "ArxivClusteringP2P": "Identify the main and secondary category of Arxiv papers based on the titles and abstracts",
    "ArxivClusteringS2S": "Identify the main and secondary category of Arxiv papers based on the titles",
    "BiorxivClusteringP2P": "Identify the main category of Biorxiv papers based on the titles and abstracts",
    "BiorxivClusteringS2S": "Identify the main category of Biorxiv papers based on the titles",
    "MedrxivClusteringP2P": "Identify the main category of Medrxiv papers based on the titles and abstracts",
    "MedrxivClusteringS2S": "Identify the main category of Medrxiv papers based on the titles",
    "RedditClustering": "Identify the topic or theme of Reddit posts based on the titles",
    "RedditClusteringP2P": "Identify the topic or theme of Reddit posts based on the titles and posts",
    "StackExchangeClustering": "Identify the topic or theme of StackExchange posts based on the titles",
    "StackExchangeClusteringP2P": "Identify the topic or theme of StackExchange posts based on the given paragraphs",
    "TwentyNewsgroupsClustering": "Identify the topic or theme of the given news articles",
    # C-MTEB
    "CLSClusteringS2S": "Identify the main category of scholar papers based on the titles",
    "CLSClusteringP2P": "Identify the main category of scholar papers based on the titles and abstracts",
    "ThuNewsClusteringS2S": "Identify the topic or theme of the given news articles based on the titles",
    "ThuNewsClusteringP2P": "Identify the topic or theme of the given news articles based on the titles and contents",
}
_RERANKING_AND_PAIRS = {
    "AskUbuntuDupQuestions": "Retrieve duplicate questions from AskUbuntu forum",
    "MindSmallReranking": "Retrieve relevant news articles based on user browsing history",
    "SciDocsRR": "Given a title of a scientific paper, retrieve the titles of other relevant papers",
    "StackOverflowDupQuestions": "Retrieve duplicate questions from StackOverflow forum",
    "SprintDuplicateQuestions": "Retrieve duplicate questions from Sprint forum",
    "TwitterSemEval2015": "Retrieve tweets that are semantically similar to the given tweet",
    "TwitterURLCorpus": "Retrieve tweets that are semantically similar to the given tweet",
    # C-MTEB
    "T2Reranking": "Given a Chinese search query, retrieve web passages that answer the question",
    "MMarcoReranking": "Given a Chinese search query, retrieve web passages that answer the question",
    "CMedQAv1": "Given a Chinese community medical question, retrieve replies that best answer the question",
    "CMedQAv2": "Given a Chinese community medical question, retrieve replies that best answer the question",
    "Ocnli": STS_INSTRUCTION,
    "Cmnli": STS_INSTRUCTION,
}
_RETRIEVAL = {
    "ArguAna": "Given a claim, find documents that refute the claim",
    "ClimateFEVER": "Given a claim about climate change, retrieve documents that support or refute the claim",
    "DBPedia": "Given a query, retrieve relevant entity descriptions from DBPedia",
    "FEVER": "Given a claim, retrieve documents that support or refute the claim",
    "FiQA2018": "Given a financial question, retrieve user replies that best answer the question",
    "HotpotQA": "Given a multi-hop question, retrieve documents that can help answer the question",
    "MSMARCO": "Given a web search query, retrieve relevant passages that answer the query",
    "NFCorpus": "Given a question, retrieve relevant documents that best answer the question",
    "NQ": "Given a question, retrieve Wikipedia passages that answer the question",
    "QuoraRetrieval": "Given a question, retrieve questions that are semantically equivalent to the given question",
    "SCIDOCS": "Given a scientific paper title, retrieve paper abstracts that are cited by the given paper",
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "Touche2020": "Given a question, retrieve detailed and persuasive arguments that answer the question",
    "TRECCOVID": "Given a query on COVID-19, retrieve documents that answer the query",
    "MIRACLRetrieval": "Given a question, retrieve Wikipedia passages that answer the question",  # unilm: `miracl`
    # C-MTEB
    "T2Retrieval": "Given a Chinese search query, retrieve web passages that answer the question",
    "MMarcoRetrieval": "Given a web search query, retrieve relevant passages that answer the query",
    "DuRetrieval": "Given a Chinese search query, retrieve web passages that answer the question",
    "CovidRetrieval": "Given a question on COVID-19, retrieve news articles that answer the question",
    "CmedqaRetrieval": "Given a Chinese community medical question, retrieve replies that best answer the question",
    "EcomRetrieval":
        "Given a user query from an e-commerce website, retrieve description sentences of relevant products",
    "MedicalRetrieval": "Given a medical question, retrieve user replies that best answer the question",
    "VideoRetrieval": "Given a video search query, retrieve the titles of relevant videos",
}

TASK_INSTRUCTIONS = {**_CLASSIFICATION, **_CLUSTERING, **_RERANKING_AND_PAIRS, **_RETRIEVAL}

# Task names for DATA paths, by lower-cased folder or file stem (`data/scifact` -> SciFact): every listed task, BEIR's
# folder names where they differ (as the unilm code maps them), and STS Benchmark's usual names.
TASK_NAMES_BY_PATH = {
    **{name.lower(): name for name in TASK_INSTRUCTIONS},
    "trec-covid": "TRECCOVID",
    "climate-fever": "ClimateFEVER",
    "dbpedia-entity": "DBPedia",
    "webis-touche2020": "Touche2020",
    "fiqa": "FiQA2018",
    "quora": "QuoraRetrieval",
    "miracl": "MIRACLRetrieval",
    "stsbenchmark": "STSBenchmark",
    "sts-benchmark": "STSBenchmark",
    "stsb": "STSBenchmark",
}


# mteb's later names for tasks of Table 15 (beside `.vN` revisions and `HardNegatives` subsets, which keep the
# instruction of the task they revise).
_MTEB_RENAMED = {"Touche2020Retrieval": "Touche2020", "CMedQAv1-reranking": "CMedQAv1",
                 "CMedQAv2-reranking": "CMedQAv2"}
_REVISION_SUFFIX = re.compile(r"(HardNegatives)?(\.v\d+)?$")


def task_instruction(task_name: str, task_type: str | None = None) -> str | None:
    """The instruction E5-mistral was evaluated with on a task: by name (Table 15; a revision of a listed task, such as
    `FEVERHardNegatives` or `StackExchangeClustering.v2`, by the name it revises), else by the rule of its mteb task
    type (`STS`, `Summarization`, `BitextMining`; CQADupstack* by name); None where neither knows one."""
    base = _REVISION_SUFFIX.sub("", task_name)
    name = _MTEB_RENAMED.get(base, base)
    if task_name in TASK_INSTRUCTIONS or name in TASK_INSTRUCTIONS:
        return TASK_INSTRUCTIONS.get(task_name) or TASK_INSTRUCTIONS[name]
    if task_name.lower().startswith("cqadupstack"):
        return CQADUPSTACK_INSTRUCTION
    return TYPE_INSTRUCTIONS.get(task_type or "")


def model_takes_instructions(is_decoder: bool, prompts: dict[str, str] | None) -> bool:
    """Whether a model was trained to read E5 instructions: decoders embedded the E5 way, and sentence-transformers
    folders that declare prompts. Plain encoders such as all-MiniLM-L6-v2 read their texts as they are."""
    return is_decoder or bool(prompts)


def with_instruction(text: str, instruction: str | None) -> str:
    """`Instruct: {instruction}\\nQuery: {text}` for a query with an instruction; the text itself otherwise."""
    if not instruction:
        return text
    return QUERY_TEMPLATE.format(instruction=instruction, text=text)


def document_text(text: str, title: str | None) -> str:
    """A document as mteb and BEIR join it: `title text`, stripped."""
    return f"{title} {text}".strip() if title else text
