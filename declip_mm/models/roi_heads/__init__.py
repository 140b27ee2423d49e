from .clip_region_features import ResNetC4RegionEmbed, ResNetC5RegionEmbed
from .fvit_bbox_head import FViTBBoxHead
from .fvit_roi_head import FViTRoIHead, pool_clip_embeddings
from .text_classifier import TextEmbeddingClassifier, load_text_embeddings
from .zero_weight_ce_loss import ZeroWeightMaskedCrossEntropyLoss

__all__ = ['ResNetC4RegionEmbed', 'ResNetC5RegionEmbed', 'FViTBBoxHead', 'FViTRoIHead', 'pool_clip_embeddings', 'TextEmbeddingClassifier',
           'load_text_embeddings', 'ZeroWeightMaskedCrossEntropyLoss']
