# CorrCLIP v1 on MetaCLIP ViT-B/16 with DINO ViT-B/8 and class-agnostic region masks: CorrCLIP's shipped
# configuration (metaclip_fullcc, ViT-B-16-quickgelu), the OpenAI B/16 recipe with MetaCLIP's weights.
_base_ = ['./model_corrclip_vitb16_dino-b8.py']
model = dict(
    backbone=dict(model_name='ViT-B-16-quickgelu', checkpoint='checkpoints/metaclip_b16_fullcc2.5b.pt'),
    text_encoder=dict(model_name='ViT-B-16-quickgelu'))
