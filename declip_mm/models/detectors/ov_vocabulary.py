"""The vocabulary interface of our open-vocabulary detectors (what ``declip_mm.apis.OVDetInferencer`` calls).

A detector class offering free-text vocabularies implements :class:`OVVocabularyMixin`:

* from the config alone (no build): its class names (:meth:`config_class_names`), the words reserved for its own
  rows (:meth:`reserved_texts`), and a copy of the model config that builds without text-embedding files
  (:meth:`without_text_files`);
* on the built model: the prompt recipe and the extra rows it needs besides the classes (:meth:`text_prompts`:
  F-ViT's ``background``, OV-DQUO's wildcard ``object``), and :meth:`set_vocabulary`, which installs the embeddings.

The inferencer encodes the user's classes plus the extra rows with the CLIP text tower and the model's recipe and
hands them over; how they enter the classifier (F-ViT's background row and alpha / beta ensemble, OV-DQUO's text
queries, novel boost and wildcard) stays inside the detector.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor


def prompt_recipe(templates: str = 'vild') -> Tuple[Sequence[str], Callable[[str, str], str]]:
    """``(templates, formatter)`` of ``tools/gen_text_embeddings.py --templates {vild,imagenet,single}`` (with the
    "This is" rule, its default)."""
    from declip_mm.models.text.templates import IMAGENET_TEMPLATES, SINGLE_TEMPLATE, VILD_TEMPLATES, vild_formatter
    table = dict(vild=VILD_TEMPLATES, imagenet=IMAGENET_TEMPLATES, single=(SINGLE_TEMPLATE, ))
    if templates not in table:
        raise ValueError(f'unknown prompt templates {templates!r} (use one of {sorted(table)})')
    return tuple(table[templates]), vild_formatter


class OVVocabularyMixin:
    """Free-text vocabularies for a detector (see the module docstring)."""

    @classmethod
    def config_class_names(cls, model_cfg) -> List[str]:
        """The classes a model built from ``model_cfg`` predicts, in label order (no build)."""
        raise NotImplementedError

    @classmethod
    def reserved_texts(cls, model_cfg) -> List[str]:
        """Words a user vocabulary may not contain (the detector's own extra rows)."""
        return []

    @classmethod
    def without_text_files(cls, model_cfg) -> None:
        """Edit ``model_cfg`` in place so that it builds without its text-embedding files."""
        raise NotImplementedError

    def text_prompts(self) -> Tuple[Sequence[str], Callable[[str, str], str], List[str]]:
        """``(templates, formatter, extra texts)``: the recipe the text embeddings are made with and the rows the
        detector needs besides the classes (encoded with the same recipe)."""
        raise NotImplementedError

    def set_vocabulary(self, class_names: Sequence[str], text_embeddings: Tensor,
                       base_classes: Optional[Sequence[str]] = None,
                       extra_embeddings: Optional[Dict[str, Tensor]] = None) -> None:
        """Install (K, D) class embeddings (``class_names`` order); ``base_classes``: names among them seen in
        training (None: all novel); ``extra_embeddings``: the rows of :meth:`text_prompts`' extra texts."""
        raise NotImplementedError
