from persona_studio.render.camera import Camera, stack_cameras
from persona_studio.render.rasterize import (
    RasterOutput,
    auto_backend,
    available_backends,
    rasterize,
    rasterize_cameras,
)

__all__ = [
    "Camera",
    "RasterOutput",
    "auto_backend",
    "available_backends",
    "rasterize",
    "rasterize_cameras",
    "stack_cameras",
]
