"""ITK affine transform files (MatrixOffsetTransformBase) and resampling between NIfTI grids in LPS."""
import numpy as np
import nibabel as nib
from scipy import ndimage as ndi

RAS2LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_itk_affine(path):
    """4x4 LPS matrix M with T(x) = A (x - c) + t + c (ITK maps fixed-space points to moving-space points)."""
    params = fixed = None
    for line in open(path):
        if line.startswith("Parameters:"):
            params = np.array(line.split(":")[1].split(), float)
        elif line.startswith("FixedParameters:"):
            fixed = np.array(line.split(":")[1].split(), float)
    A = params[:9].reshape(3, 3)
    t = params[9:12]
    c = fixed[:3]
    M = np.eye(4)
    M[:3, :3] = A
    M[:3, 3] = t + c - A @ c
    return M


def resample(moving_img, target_affine_ras, target_shape, target_to_moving_lps=np.eye(4), order=1):
    """Sample a nibabel image on a target grid. target_to_moving_lps maps target-space LPS points to the
    moving image's LPS space (identity = same physical space)."""
    vox_t = np.stack(np.meshgrid(*[np.arange(n) for n in target_shape], indexing="ij"), 0).reshape(3, -1)
    vox_t = np.vstack([vox_t, np.ones((1, vox_t.shape[1]))])
    lps_t = RAS2LPS @ target_affine_ras @ vox_t
    lps_m = target_to_moving_lps @ lps_t
    vox_m = np.linalg.inv(moving_img.affine) @ RAS2LPS @ lps_m  # RAS2LPS is its own inverse
    data = np.asarray(moving_img.dataobj, np.float32)
    out = ndi.map_coordinates(data, vox_m[:3], order=order, mode="constant", cval=0.0)
    return out.reshape(target_shape).astype(np.float32)
