# Official B/16 setting with the paper's context weight 0.25 (Table 11's lambda).
_base_ = ['./declip_eva02_b16_dinov2_b_coco.py']
model = dict(context_weight=0.25)
