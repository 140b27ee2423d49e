"""Prompt templates and class-name formatting for CLIP text classifiers.

* ``VILD_TEMPLATES`` — the 63 ViLD prompt-ensemble templates used by ViLD / CLIPSelf F-ViT / DeCLIP detection
  (``{article}`` is filled with "a"/"an", ``{}`` with the cleaned class name).
* ``IMAGENET_TEMPLATES`` — the 80 OpenAI ImageNet templates, taken from open_clip's ``OPENAI_IMAGENET_TEMPLATES``
  (``{}`` only).
* ``CATSEG_TEMPLATE`` — CAT-Seg's single template.

Formatting (ViLD rule, see docs/detection.md): the class name is cleaned by :func:`processed_name`
(``_`` -> space, ``/`` -> " or ", lower-case, trailing "." removed); the article is "an" iff the *raw* name
starts with a lower-case vowel; a sentence beginning with "a" or "the" gets the prefix "This is ".
"""
from typing import List, Sequence

from open_clip import OPENAI_IMAGENET_TEMPLATES

VILD_TEMPLATES = (
    'There is {article} {} in the scene.',
    'There is the {} in the scene.',
    'a photo of {article} {} in the scene.',
    'a photo of the {} in the scene.',
    'a photo of one {} in the scene.',
    'itap of {article} {}.',
    'itap of my {}.',
    'itap of the {}.',
    'a photo of {article} {}.',
    'a photo of my {}.',
    'a photo of the {}.',
    'a photo of one {}.',
    'a photo of many {}.',
    'a good photo of {article} {}.',
    'a good photo of the {}.',
    'a bad photo of {article} {}.',
    'a bad photo of the {}.',
    'a photo of a nice {}.',
    'a photo of the nice {}.',
    'a photo of a cool {}.',
    'a photo of the cool {}.',
    'a photo of a weird {}.',
    'a photo of the weird {}.',
    'a photo of a small {}.',
    'a photo of the small {}.',
    'a photo of a large {}.',
    'a photo of the large {}.',
    'a photo of a clean {}.',
    'a photo of the clean {}.',
    'a photo of a dirty {}.',
    'a photo of the dirty {}.',
    'a bright photo of {article} {}.',
    'a bright photo of the {}.',
    'a dark photo of {article} {}.',
    'a dark photo of the {}.',
    'a photo of a hard to see {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of {article} {}.',
    'a low resolution photo of the {}.',
    'a cropped photo of {article} {}.',
    'a cropped photo of the {}.',
    'a close-up photo of {article} {}.',
    'a close-up photo of the {}.',
    'a jpeg corrupted photo of {article} {}.',
    'a jpeg corrupted photo of the {}.',
    'a blurry photo of {article} {}.',
    'a blurry photo of the {}.',
    'a pixelated photo of {article} {}.',
    'a pixelated photo of the {}.',
    'a black and white photo of the {}.',
    'a black and white photo of {article} {}.',
    'a plastic {}.',
    'the plastic {}.',
    'a toy {}.',
    'the toy {}.',
    'a plushie {}.',
    'the plushie {}.',
    'a cartoon {}.',
    'the cartoon {}.',
    'an embroidered {}.',
    'the embroidered {}.',
    'a painting of the {}.',
    'a painting of a {}.',
)

# open_clip's list, as format strings ({} for the name); equal to our former copy string for string (tested)
IMAGENET_TEMPLATES = tuple(t('{}') for t in OPENAI_IMAGENET_TEMPLATES)

CATSEG_TEMPLATE = 'A photo of a {} in the scene'

SINGLE_TEMPLATE = 'a photo of {article} {}.'

assert len(VILD_TEMPLATES) == 63 and len(IMAGENET_TEMPLATES) == 80


def article(name: str) -> str:
    """"an" if the raw class name starts with a (lower-case) vowel, else "a" (ViLD rule)."""
    return 'an' if name[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'


def processed_name(name: str, rm_dot: bool = True) -> str:
    """Clean a dataset class name: ``_`` -> space (LVIS), ``/`` -> " or " (Objects365), lower-case,
    and (``rm_dot``) strip trailing dots."""
    res = name.replace('_', ' ').replace('/', ' or ').lower()
    if rm_dot:
        res = res.rstrip('.')
    return res


def add_this_is(sentence: str) -> str:
    """ViLD's "This is" rule: prefix sentences starting with "a" or "the" (character test, as in ViLD)."""
    if sentence.startswith('a') or sentence.startswith('the'):
        return 'This is ' + sentence
    return sentence


def vild_formatter(template: str, name: str) -> str:
    """``formatter(template, name) -> sentence`` for ``CLIPTextEncoder.embed_classes`` (ViLD recipe).

    ``name`` is the raw dataset class name; it is cleaned, the article is chosen from the raw name and the
    "This is " prefix rule is applied.
    """
    return add_this_is(template.format(processed_name(name), article=article(name)))


def plain_formatter(template: str, name: str) -> str:
    """Formatter without the "This is" rule (templates with ``{}`` and optionally ``{article}``)."""
    return template.format(processed_name(name), article=article(name))


def class_sentences(name: str, templates: Sequence[str] = VILD_TEMPLATES, this_is: bool = True) -> List[str]:
    """All prompt sentences of one class (63 with the default ViLD templates)."""
    fmt = vild_formatter if this_is else plain_formatter
    return [fmt(t, name) for t in templates]
