# F-ViT + DeCLIP ViT-B/16, OV-LVIS.  Paper: 26.8 / 22.4 / 29.8 / 26.0 APr / APc / APf / AP (mask).
_base_ = './fvit_eva02-b16_8xb8-48e_ov-lvis-1024.py'
model = dict(
    backbone=dict(checkpoint='checkpoints/declip_eva02_b16.pt', dense_mode='csa'),
    roi_head=dict(bbox_head=dict(vlm_temperature=90.0)))
