"""CLIP text tower + open_clip tokenizer as a small module: class names x prompt templates -> embeddings.

Registered as ``DeCLIPTextEncoder`` (mmseg already registers an unrelated ``CLIPTextEncoder`` for SAN); the Python
name ``CLIPTextEncoder`` is kept as an alias.
"""
import hashlib
import json
import os
import os.path as osp
import warnings
from typing import Callable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from declip_mm.registry import DET_MODELS, MODELS, SEG_MODELS, register_everywhere
from ..backbones.checkpoint import load_clip_state_dict, load_into
from ..backbones.clip_builder import build_clip_model
from ..backbones.freezing import apply_trainable_rule
from ..backbones.pending_weights import check_weights_loaded, defer_missing_checkpoint
from ..backbones.towers import split_mha_qkv


def _default_formatter(template: str, name: str) -> str:
    return template.format(name)


@register_everywhere(MODELS, DET_MODELS, SEG_MODELS)
class DeCLIPTextEncoder(BaseModule):
    """The text tower of the same open_clip CLIP as a ``DeCLIPViT`` (built offline, weights from a local file).

    Args:
        model_name / model_overrides / checkpoint / quick_gelu: as ``DeCLIPViT``; the checkpoint must contain the
            text tower (open_clip, EVA-CLIP release and DeCLIP ``epoch_k.pt`` files do; backbone exports do not).
        frozen: no gradients, eval mode kept (default).
        trainable: ``None``/'all' or fnmatch patterns over ``named_parameters()`` names (e.g. CAT-Seg's
            ``['*attn.in_proj_weight']``); ignored when ``frozen``.
        split_qkv: separate q/k/v weight parameters in every text block (for q/v-only rules).
        batch_size: sentences per text-tower call.
        cache_dir: directory of the on-disk embedding cache (None: memory only); see :meth:`embed_classes`.
        context_length: tokenise to this many tokens (truncated, EOT forced as the last token; OV-DQUO / CORA's
            ResNet text encoder uses 15), then zero-padded to the model's length: with causal attention the EOT
            output equals a run at the short length.  None: the model's own (77).
    """

    def __init__(self, model_name: str = 'EVA02-B-16', model_overrides: Optional[dict] = None,
                 checkpoint: Optional[str] = None, quick_gelu: Optional[bool] = None, frozen: bool = True,
                 trainable: Union[None, str, Sequence[str]] = None, split_qkv: bool = False, batch_size: int = 256,
                 cache_dir: Optional[str] = None, context_length: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        import open_clip
        clip = build_clip_model(model_name, model_overrides, quick_gelu)
        self._pending_checkpoint = None
        if checkpoint and defer_missing_checkpoint(self, checkpoint):  # a full model checkpoint must fill it
            checkpoint = None
        sd = load_clip_state_dict(checkpoint, clip)[0] if checkpoint else None
        clip.visual = None  # the image tower lives in DeCLIPViT
        if checkpoint:
            text_sd = {k: v for k, v in sd.items() if not k.startswith('visual.')}
            if not text_sd:
                raise ValueError(f'{checkpoint} has no text-tower weights (a backbone export?); give the text '
                                 'encoder the original CLIP / DeCLIP checkpoint')
            load_into(clip, {'clip.' + k: v for k, v in text_sd.items()}, 'clip.', model_name + ' (text)')
        if split_qkv:
            for m in clip.modules():
                if isinstance(m, nn.MultiheadAttention):
                    split_mha_qkv(m)
        self.clip = clip
        self.model_name = model_name
        self.tokenizer = open_clip.get_tokenizer(model_name)
        model_ctx = getattr(self.tokenizer, 'context_length', None)
        if context_length is not None and not (model_ctx and 2 <= int(context_length) <= model_ctx):
            raise ValueError(f'context_length={context_length} must be in [2, {model_ctx}] for {model_name}')
        self.context_length = None if context_length is None else int(context_length)
        self.batch_size = batch_size
        self.embed_dim = clip.text_projection.shape[1] if getattr(clip, 'text_projection', None) is not None \
            else clip.text.text_projection.shape[1]
        self.frozen = frozen
        apply_trainable_rule(self, frozen, trainable)
        if frozen:
            self.eval()
        self._cache = {}
        self._digest = (None, None)
        self.cache_dir = cache_dir
        self.show_progress = False  # a line + a tqdm bar over class batches whenever the text tower runs

    def init_weights(self):
        check_weights_loaded(self)
        self._is_init = True  # weights come from `checkpoint`

    def train(self, mode: bool = True):
        super().train(mode and not self.frozen)
        return self

    def _weights_version(self):
        return tuple(p._version for p in self.parameters()) + (str(next(self.parameters()).device), )

    def weights_digest(self) -> str:
        """sha256 of the text tower's weights (names, shapes, dtypes, bytes); recomputed only after a weight change."""
        version = self._weights_version()
        if self._digest[0] != version:
            h = hashlib.sha256(self.model_name.encode())
            for k, v in self.state_dict().items():
                v = v.detach().cpu().contiguous()
                h.update(f'{k}|{tuple(v.shape)}|{v.dtype}'.encode())
                h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
            self._digest = (version, h.hexdigest())
        return self._digest[1]

    def tokenize(self, sentences: List[str]) -> torch.Tensor:
        """(N,) sentences -> (N, L) token ids (``context_length`` applied, see the class docstring)."""
        if self.context_length is None:
            return self.tokenizer(sentences)
        tokens = self.tokenizer(sentences, context_length=self.context_length)  # open_clip: truncate, EOT last
        return F.pad(tokens, (0, self.tokenizer.context_length - self.context_length))

    def encode_sentences(self, sentences: List[str]) -> torch.Tensor:
        """(N,) sentences -> (N, D) L2-normalised embeddings (differentiable if trainable)."""
        check_weights_loaded(self)
        if not sentences:
            raise ValueError('encode_sentences got no sentences')
        device = next(self.parameters()).device
        outs = []
        for i in range(0, len(sentences), self.batch_size):
            tokens = self.tokenize(list(sentences[i:i + self.batch_size])).to(device)
            outs.append(self.clip.encode_text(tokens))
        return F.normalize(torch.cat(outs), dim=-1)

    def embed_classes(self, class_names: Sequence[str], templates: Sequence[str],
                      formatter: Optional[Callable[[str, str], str]] = None) -> torch.Tensor:
        """(K,) names x (P,) templates -> (K, D): normalise each sentence, mean over templates, renormalise.

        Raises the not-found error first if the module's CLIP file was missing and no model checkpoint filled it.
        ``formatter(template, name) -> sentence`` (default ``template.format(name)``).  Cached on the formatted
        sentences themselves (not on the formatter's identity) plus the weight versions, in memory (latest entry)
        and, when ``cache_dir`` is set, on disk under sha256(weights digest, sentences); while gradients are needed
        the caches are bypassed.
        """
        check_weights_loaded(self)  # before any cache look-up: an unloaded tower must never produce an entry
        if not class_names:
            raise ValueError('embed_classes needs at least one class name')
        if not templates:
            raise ValueError('embed_classes needs at least one prompt template')
        formatter = formatter or _default_formatter
        num_k, num_p = len(class_names), len(templates)
        sentences = [formatter(t, n) for n in class_names for t in templates]
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        if needs_grad:
            # open_clip's build_zero_shot_classifier runs under no_grad; CAT-Seg fine-tunes the text tower
            emb = self.encode_sentences(sentences).reshape(num_k, num_p, -1)
            return F.normalize(emb.mean(dim=1), dim=-1)
        key = (tuple(sentences), num_p, self._weights_version())
        if key in self._cache:
            return self._cache[key]
        path = self._disk_path(sentences, num_p) if self.cache_dir else None
        emb = self._disk_load(path, num_k) if path else None
        if emb is None:
            import open_clip
            from functools import partial
            device = next(self.parameters()).device
            if self.show_progress:
                print(f'encoding {num_k} names x {num_p} templates on {device}'
                      + (f' (cached afterwards in {self.cache_dir})' if path else ''), flush=True)
            per_call = max(1, self.batch_size // num_p)  # names per text-tower call
            bar = None
            if self.show_progress:
                from tqdm import tqdm
                bar = tqdm(total=num_k, unit='name', dynamic_ncols=True)
            parts = []
            for i in range(0, num_k, per_call):  # open_clip's zero-shot classifier, one batch of names a call
                chunk = list(class_names[i:i + per_call])
                parts.append(open_clip.build_zero_shot_classifier(
                    self.clip, self.tokenize, chunk, [partial(formatter, t) for t in templates],
                    num_classes_per_batch=per_call, device=device).t())
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
            emb = torch.cat(parts).contiguous()
            if path:
                self._disk_save(path, emb, class_names, sentences)
        else:
            emb = emb.to(next(self.parameters()).device)
        emb = emb.detach()
        self._cache = {key: emb}  # keep only the latest entry
        return emb

    # -------------------------------------------------------------------------------------------- disk cache
    def _disk_path(self, sentences: List[str], num_p: int) -> str:
        key = dict(weights=self.weights_digest(), templates_per_name=num_p, sentences=list(sentences))
        if self.context_length is not None:
            key['context_length'] = self.context_length
        h = hashlib.sha256(json.dumps(key).encode()).hexdigest()
        return osp.join(osp.expanduser(self.cache_dir), f'{h}.pt')

    @staticmethod
    def _disk_load(path: str, num_k: int) -> Optional[torch.Tensor]:
        if not osp.isfile(path):
            return None
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
            emb = obj['embeddings']
        except Exception as e:  # a truncated / foreign file: recompute and overwrite
            warnings.warn(f'text-embedding cache file {path} is unreadable ({e}); recomputing')
            return None
        return emb if emb.dim() == 2 and emb.shape[0] == num_k else None

    @staticmethod
    def _disk_save(path: str, emb: torch.Tensor, names, sentences) -> None:
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = f'{path}.{os.getpid()}.tmp'
        torch.save(dict(embeddings=emb.detach().float().cpu(), names=[str(n) for n in names],
                        sentences=list(sentences)), tmp)
        os.replace(tmp, path)

    def forward(self, class_names: Sequence[str], templates: Sequence[str] = ('{}', )) -> torch.Tensor:
        return self.embed_classes(class_names, templates)


CLIPTextEncoder = DeCLIPTextEncoder  # Python alias (not a registry name: mmseg owns that one)
MODELS.register_module(name='CLIPTextEncoder', module=DeCLIPTextEncoder)  # declip_mm scope only
