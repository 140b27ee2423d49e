# Official B/16 setting with the paper's context weight 0.25 (Table 11's lambda).
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']
model = dict(context_weight=0.25)
