# csa context (Q and K; the released checkpoints' mode): the student similarity is the mean of the
# head-concatenated Q and K similarities (the corrected form). Export records dense_mode='csa'.
_base_ = ['./declip_eva02_b16_dinov2_b_coco.py']
model = dict(student=dict(dense_mode='csa'))
