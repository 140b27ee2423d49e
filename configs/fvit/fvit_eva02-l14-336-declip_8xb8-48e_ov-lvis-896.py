# F-ViT + DeCLIP ViT-L/14-336, OV-LVIS.  Paper: 37.2 / 35.2 / 36.5 / 36.0 APr / APc / APf / AP (mask).
_base_ = './fvit_eva02-l14-336_8xb8-48e_ov-lvis-896.py'
model = dict(
    backbone=dict(checkpoint='checkpoints/declip_eva02_l14_336.pt', dense_mode='csa'),
    roi_head=dict(bbox_head=dict(vlm_temperature=90.0)))
