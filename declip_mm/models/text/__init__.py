from .text_encoder import CLIPTextEncoder, DeCLIPTextEncoder

__all__ = ['CLIPTextEncoder', 'DeCLIPTextEncoder']
