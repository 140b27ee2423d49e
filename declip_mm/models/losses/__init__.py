from .declip_losses import (DeCLIPContentLoss, DeCLIPContextLoss, RegionCorrelationLoss, boxes_to_rois,  # noqa: F401
                            content_loss, context_loss, legacy_csa_context_loss, region_correlation_loss,
                            roi_align_1x1, similarity, student_similarity)
from .ov_varifocal_loss import OVVarifocalLoss, ov_varifocal_loss  # noqa: F401
