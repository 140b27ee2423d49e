# CorrCLIP v1 on DeCLIP EVA02-B/16 with DINO ViT-B/8 and class-agnostic region masks (new combination), under
# CorrCLIP's protocol (the OpenAI B/16 recipe, inherited).
# DeCLIP's content path proj(inner_ln(A V)) for the main / spatial branches, EVA's own position-embedding resize
# and RoPE; the mask class tokens run EVA's normal blocks.
_base_ = ['./model_corrclip_vitb16_dino-b8.py']
model = dict(
    backbone=dict(_delete_=True, type='DeCLIPViT', model_name='EVA02-B-16',
                  checkpoint='checkpoints/declip_eva02_b16.pt', dense_mode='csa', attn_scale='sqrt',
                  out_types=('dense', ), frozen=True),
    text_encoder=dict(model_name='EVA02-B-16'))
