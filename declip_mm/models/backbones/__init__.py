from .checkpoint import CheckpointError, CheckpointNotFoundError, export_backbone, load_clip_state_dict, read_checkpoint
from .clip_resnet import CLIPResNet, tiny_resnet_overrides
from .clip_builder import CLIP_MEAN, CLIP_STD, SUPPORTED_MODELS, build_clip_model, clip_family, tiny_clip_overrides
from .declip_vit import DECOUPLED_MODES, MODES, DeCLIPViT, decoupled_attention

__all__ = ['CheckpointNotFoundError', 'CLIPResNet', 'tiny_resnet_overrides', 'DeCLIPViT', 'decoupled_attention', 'MODES', 'DECOUPLED_MODES', 'build_clip_model', 'clip_family',
           'tiny_clip_overrides', 'SUPPORTED_MODELS', 'CLIP_MEAN', 'CLIP_STD', 'CheckpointError', 'export_backbone',
           'load_clip_state_dict', 'read_checkpoint']
