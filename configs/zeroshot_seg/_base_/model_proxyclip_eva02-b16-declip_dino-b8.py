# DeCLIP EVA02-CLIP-B/16 + ProxyCLIP (new combination): DINO ViT-B/8 proxy attention on DeCLIP's last-block values,
# under ProxyCLIP's protocol (the OpenAI B/16 recipe, inherited).
# DeCLIP's content path: proj(inner_ln(A V)) with A the proxy attention (no residual / FFN); EVA's own
# position-embedding resize and RoPE for blocks 1..L-1.
_base_ = ['./model_proxyclip_vitb16_dino-b8.py']
model = dict(
    backbone=dict(_delete_=True, type='DeCLIPViT', model_name='EVA02-B-16',
                  checkpoint='checkpoints/declip_eva02_b16.pt', dense_mode='csa', attn_scale='sqrt',
                  out_types=('dense', ), frozen=True),
    text_encoder=dict(model_name='EVA02-B-16'))
