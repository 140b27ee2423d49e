from .vfm_teacher import VFM_SPECS, VFMTeacher  # noqa: F401
