"""Bonus track: Gaussian splatting in pure PyTorch (bonus notebooks 6 and 7), one concept per file.

Conventions (the same as the 3DGS paper's code and ``gsplat``): OpenCV cameras (x right, y down, z forward),
world-to-camera ``x_cam = R x_world + t``, quaternions ``(w, x, y, z)``, colours in [0, 1], images ``(H, W, 3)``.

- ``llmlab.splat.gaussians`` -- covariance from scale and rotation (2-D angle, 3-D quaternion), spherical-harmonic
  colour of degree 0-1, the ``Gaussians`` container and ``GaussianModel`` (unconstrained, trainable parameters).
- ``llmlab.splat.camera`` -- the pinhole ``Camera``, ``look_at``, ``ring_cameras``, the projection Jacobian and
  EWA projection of 3-D Gaussians to 2-D (means, covariances, depths).
- ``llmlab.splat.rasterize`` -- 2-D Gaussian evaluation, front-to-back alpha compositing, ``rasterize_2d`` (an
  image from 2-D Gaussians) and ``render`` (3-D: project, sort by depth, composite; dense or tiled; differentiable).
- ``llmlab.splat.scenes`` -- synthetic scenes with known ground truth: coloured objects made of Gaussians,
  cameras on a ring, train and held-out views rendered by ``render``.
- ``llmlab.splat.metrics`` -- PSNR and SSIM (equal to ``skimage.metrics``), differentiable for use as losses.
- ``llmlab.splat.lgm`` -- bonus notebook 7: a tiny LGM (Plücker ray embeddings, pixel-aligned unprojection,
  the asymmetric multi-view U-Net, the Gaussian head); ``llmlab.splat.objects``: random single objects and their views;
  ``llmlab.splat.pointdiffusion``: a toy DDPM over point clouds (reuses ``llmlab.diffusion.ddpm``).

The stable entry points: ``render(gaussians, camera) -> Render(image, alpha, depth)``, ``render_views``,
``Camera``/``ring_cameras``, ``make_scene``/``make_object``, ``psnr``/``ssim``.
"""

from llmlab.splat.camera import Camera, look_at, project_gaussians, projection_jacobian, ring_cameras
from llmlab.splat.gaussians import GaussianModel, Gaussians, covariance_2d, covariance_3d, quat_to_rotmat, sh_to_rgb
from llmlab.splat.metrics import psnr, ssim
from llmlab.splat.rasterize import Render, composite, gaussian_2d, rasterize_2d, render, render_views
from llmlab.splat.scenes import Scene, make_object, make_scene

__all__ = [
    "Camera", "look_at", "project_gaussians", "projection_jacobian", "ring_cameras",
    "GaussianModel", "Gaussians", "covariance_2d", "covariance_3d", "quat_to_rotmat", "sh_to_rgb",
    "psnr", "ssim", "Render", "composite", "gaussian_2d", "rasterize_2d", "render", "render_views",
    "Scene", "make_object", "make_scene",
]
