"""Real-time OpenGL viewport: splat renderer, render thread, orbit camera.

Importing this package does not touch OpenGL; the GL modules load when a renderer is made.
The orbit camera (:mod:`persona_studio.viewer.orbit`) is pure numpy.
"""

from persona_studio.viewer.orbit import OrbitCamera

__all__ = [
    "Frame",
    "FrameMailbox",
    "GLContextError",
    "OrbitCamera",
    "RenderMode",
    "RenderOptions",
    "RenderThread",
    "SplatRenderer",
]

_LAZY = {
    "SplatRenderer": "persona_studio.viewer.renderer",
    "RenderOptions": "persona_studio.viewer.renderer",
    "RenderMode": "persona_studio.viewer.renderer",
    "RenderThread": "persona_studio.viewer.render_thread",
    "Frame": "persona_studio.viewer.render_thread",
    "FrameMailbox": "persona_studio.viewer.render_thread",
    "GLContextError": "persona_studio.viewer.gl_context",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'persona_studio.viewer' has no attribute {name!r}")
