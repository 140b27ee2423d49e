# F-ViT + DeCLIP ViT-B/16 (EVA02), OV-COCO.  Paper (DeCLIP Table 13): 41.1 / 57.8 / 53.5 AP50 novel / base / all.
# The backbone is a DeCLIP checkpoint (DeCLIP epoch_k.pt or our export); vlm_feat uses its decoupled mode (csa for
# the released B/16 weights) and DeCLIP's temperature 45 (applied as T_vlm).  Pyramid level 4 keeps F-ViT's
# no-attention block (last_feat_mode='maskclip'); set it to 'csa' to swap the last block everywhere.
_base_ = './fvit_eva02-b16_8xb8-3e_ov-coco-640.py'
model = dict(
    backbone=dict(checkpoint='checkpoints/declip_eva02_b16.pt', dense_mode='csa'),
    roi_head=dict(bbox_head=dict(vlm_temperature=45.0)))
