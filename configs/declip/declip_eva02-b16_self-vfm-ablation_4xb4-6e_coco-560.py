# Table 1, row 2: self-distillation + VFM correlations on the same (undecoupled) dense feature: the normal last
# block's content map is used both for RoI alignment and as the context.
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']
model = dict(distill_mode='self_vfm', student=dict(dense_mode='vanilla'))
