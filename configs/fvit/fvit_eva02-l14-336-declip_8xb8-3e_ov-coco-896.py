# F-ViT + DeCLIP ViT-L/14-336 (EVA02), OV-COCO.  Paper: 46.2 / 65.2 / 60.3 AP50 novel / base / all.
_base_ = './fvit_eva02-l14-336_8xb8-3e_ov-coco-896.py'
model = dict(
    backbone=dict(checkpoint='checkpoints/declip_eva02_l14_336.pt', dense_mode='csa'),
    roi_head=dict(bbox_head=dict(vlm_temperature=45.0)))
