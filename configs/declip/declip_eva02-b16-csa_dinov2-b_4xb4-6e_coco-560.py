# csa context (Q and K; the released checkpoints' mode): the student similarity is the mean of the
# head-concatenated Q and K similarities (the corrected form). Export records dense_mode='csa'.
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']
model = dict(student=dict(dense_mode='csa'))
