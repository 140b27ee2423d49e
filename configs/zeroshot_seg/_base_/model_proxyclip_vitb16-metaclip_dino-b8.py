# ProxyCLIP on MetaCLIP ViT-B/16 (open_clip ViT-B-16-quickgelu, metaclip_fullcc weights) with DINO ViT-B/8: the
# OpenAI B/16 recipe with MetaCLIP's weights. pos_embed_resize='dino_scale' (inherited): as the original's open_clip
# resizes the 14x14 position grid.
_base_ = ['./model_proxyclip_vitb16_dino-b8.py']
model = dict(
    backbone=dict(model_name='ViT-B-16-quickgelu', checkpoint='checkpoints/metaclip_b16_fullcc2.5b.pt'),
    text_encoder=dict(model_name='ViT-B-16-quickgelu'))
