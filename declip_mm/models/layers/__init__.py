"""Building blocks shared by detectors: CLIP region embedders and text-conditioned denoising queries."""
from .region_embedder import ResNetRegionEmbedder, ViTRegionEmbedder, valid_cells
from .text_cdn import WILDCARD_LABEL, TextCdnQueryGenerator

__all__ = ['ViTRegionEmbedder', 'ResNetRegionEmbedder', 'valid_cells', 'TextCdnQueryGenerator', 'WILDCARD_LABEL']
