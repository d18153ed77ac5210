"""Synchronous OpenGL splat renderer: Gaussians (+ skeleton / mesh overlays) -> float32 RGBA image.

Per frame: upload the arrays that changed (``glBufferSubData``), re-sort the Gaussians front to
back only when the view direction or the means changed (:mod:`depth_sort`), draw one point sprite
(or instanced quad) per Gaussian with the EWA projection in the vertex shader
(``shaders/splat_common.glsl``) and the Gaussian falloff in the fragment shader, composite the
background under them, draw the overlays on top and read the image back as [H, W, 4] float32 in
[0, 1], top row first.

Image formation follows the project's differentiable rasteriser (gsplat's rules): the camera
convention of ``persona_studio.render.camera`` (OpenCV R, t, pixel intrinsics, pixel centres at
+0.5), the same 2D covariance with 0.3 px^2 dilation, ``alpha = min(0.999, opacity exp(-maha^2/2))``,
fragments below 1/255 dropped, ordering by the camera depth of the centres, and
``rgb = sum_i T_i a_i c_i + T_N background``.

Speed on a software rasteriser (Mesa llvmpipe) is bounded by fill rate, so the footprint is the
ellipse's box out to where alpha falls below 1/255 (at most 3 standard deviations), and splats are
blended front to back in a few batches: between batches, pixels that became opaque are closed in
the depth buffer, so the early depth test skips what lies behind them (gsplat's early termination).

The renderer owns a GL context current on the thread that built it; use it from that thread only
(:class:`persona_studio.viewer.render_thread.RenderThread` runs one on its own thread).
"""

from __future__ import annotations

import ctypes
import itertools
import math
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from OpenGL import GL

from persona_studio.render.camera import Camera
from persona_studio.viewer.depth_sort import DepthSorter
from persona_studio.viewer.gl_context import HiddenGLContext
from persona_studio.viewer.glsl import SHADER_DIR, Program
from persona_studio.viewer.scene import (
    GaussianArrays,
    gaussian_arrays,
    mesh_edges,
    replace_gaussian_arrays,
    skeleton_segments,
    to_numpy,
)

MAX_ALPHA = 0.999  # cap on one Gaussian's alpha (gsplat, and the project rasteriser)
EPS_2D = 0.3  # pixels^2 added to the 2D covariance diagonal (gsplat's eps2d)
MAX_SIGMA = 3.0  # footprint half-extent cap, in standard deviations
MAX_GUARD_BAND = 256  # pixels; also caps the point sprite size at twice this
SATURATION_PASSES = 4  # front-to-back batches; saturated pixels are closed between batches
SATURATED_ALPHA_8BIT = 254.0 / 255.0  # RGBA8 alpha at which a pixel is done (transmittance <= 1/255)
SATURATED_ALPHA_FLOAT = 1.0 - 1e-4  # float targets: gsplat's transmittance threshold
ACCUMULATED_UNIT = 7  # texture unit the saturation pass reads the colour target from


class RenderMode(str, Enum):
    """What the viewport shows of the Gaussians: colours, depth, normals, part colours or opacity."""
    RGB = "rgb"  # the Gaussians' colours
    DEPTH = "depth"  # expected depth, colour-mapped (near warm, far cool)
    NORMALS = "normals"  # caller-supplied per-Gaussian normals, in camera space, as normal-map colours
    PARTS = "parts"  # caller-supplied per-Gaussian part colours
    ALPHA = "alpha"  # accumulated opacity, white on black


# Which GPU array holds each input array (means and opacities share one vec4 per Gaussian).
_ARRAYS_OF = {"means": "mean_opacity", "opacities": "mean_opacity", "scales": "scale", "quats": "quat",
              "colors": "color", "normals": "normal", "part_colors": "part"}

_SHADER_MODE = {RenderMode.RGB: 0, RenderMode.PARTS: 0, RenderMode.DEPTH: 1, RenderMode.NORMALS: 2,
                RenderMode.ALPHA: 3}


@dataclass(frozen=True)
class RenderOptions:
    """What to draw and how; cheap to make, compared by value."""

    mode: RenderMode = RenderMode.RGB
    background: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # straight (not premultiplied) RGBA
    show_skeleton: bool = True  # when a skeleton was given
    show_mesh: bool = True  # when a mesh was given
    skeleton_color: tuple[float, float, float, float] = (1.0, 0.8, 0.1, 1.0)
    mesh_color: tuple[float, float, float, float] = (0.3, 0.85, 1.0, 0.5)
    bone_width: float = 2.5  # pixels
    joint_size: float = 6.0  # pixels
    near: float = 0.01
    far: float = 100.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", RenderMode(self.mode))
        if len(self.background) != 4:
            raise ValueError(f"background must be RGBA (4 values), got {self.background}")
        if not 0.0 < self.near < self.far:
            raise ValueError(f"need 0 < near < far, got near={self.near}, far={self.far}")


def gl_projection(camera: Camera, near: float, far: float) -> np.ndarray:
    """[4, 4] OpenCV camera space -> GL clip space for ``camera``'s pixel intrinsics.

    Pixel coordinates map linearly to NDC, ``x_ndc = 2 u / W - 1`` and ``y_ndc = 2 v / H - 1``
    (image row 0 at the bottom of GL's framebuffer, so glReadPixels yields the top row first);
    camera z in [near, far] maps to NDC z in [-1, 1].
    """
    W, H = camera.width, camera.height
    return np.array([
        [2.0 * camera.fx / W, 0.0, 2.0 * camera.cx / W - 1.0, 0.0],
        [0.0, 2.0 * camera.fy / H, 2.0 * camera.cy / H - 1.0, 0.0],
        [0.0, 0.0, (far + near) / (far - near), -2.0 * far * near / (far - near)],
        [0.0, 0.0, 1.0, 0.0],
    ])


def _premultiplied(rgba) -> np.ndarray:
    r, g, b, a = (float(v) for v in rgba)
    return np.array([r * a, g * a, b * a, a], dtype=np.float32)


def _rgba_texels(values: np.ndarray, w: np.ndarray | float = 0.0) -> np.ndarray:
    """[N, 3] -> [N, 4] float32 with ``w`` in the last channel (RGBA32F texel buffers)."""
    out = np.empty((len(values), 4), dtype=np.float32)
    out[:, :3] = values
    out[:, 3] = w
    return out


def _set_blending_state(close_test: bool) -> None:
    """GL state for splats: front-to-back blending ``dst += (1 - dst.a) src``; with ``close_test``,
    the depth test rejects fragments where a closed pixel holds depth 0.5 (splats are drawn at 0.5)."""
    if close_test:
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
    else:
        GL.glDisable(GL.GL_DEPTH_TEST)
    GL.glDepthMask(GL.GL_FALSE)
    GL.glEnable(GL.GL_BLEND)
    GL.glBlendFunc(GL.GL_ONE_MINUS_DST_ALPHA, GL.GL_ONE)


class _GaussianBuffer:
    """One per-Gaussian RGBA32F array in a buffer object, readable both as a vertex attribute
    (point path) and through a buffer texture (``samplerBuffer``, quad path); grows on demand."""

    def __init__(self) -> None:
        self.buffer = GL.glGenBuffers(1)
        self.texture = GL.glGenTextures(1)
        self.capacity = 0

    def upload(self, texels: np.ndarray) -> None:
        """Copy [N, 4] float32 texels into the buffer, growing it (and re-pointing the texture) when too
        small."""
        data = np.ascontiguousarray(texels, dtype=np.float32)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.buffer)
        if data.nbytes > self.capacity or self.capacity == 0:
            self.capacity = max(data.nbytes, 16)
            GL.glBufferData(GL.GL_ARRAY_BUFFER, self.capacity, None, GL.GL_DYNAMIC_DRAW)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.texture)
            GL.glTexBuffer(GL.GL_TEXTURE_BUFFER, GL.GL_RGBA32F, self.buffer)
        if data.nbytes:
            GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)

    def bind_texture(self, unit: int) -> None:
        """Bind the buffer texture to texture unit ``unit``."""
        GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.texture)

    def bind_attribute(self, location: int) -> None:
        """Point vertex attribute ``location`` (of the bound VAO) at this array, one vec4 per vertex."""
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.buffer)
        GL.glEnableVertexAttribArray(location)
        GL.glVertexAttribPointer(location, 4, GL.GL_FLOAT, GL.GL_FALSE, 16, None)

    def delete(self) -> None:
        """Free the texture and the buffer."""
        GL.glDeleteTextures([self.texture])
        GL.glDeleteBuffers(1, [self.buffer])


class _ArrayBuffer:
    """A vertex/index buffer whose storage grows on demand; uploads with glBufferSubData."""

    def __init__(self, target: int = GL.GL_ARRAY_BUFFER) -> None:
        self.target = target
        self.buffer = GL.glGenBuffers(1)
        self.capacity = 0

    def upload(self, data: np.ndarray) -> None:
        """Copy ``data`` into the buffer, growing its storage when too small."""
        data = np.ascontiguousarray(data)
        GL.glBindBuffer(self.target, self.buffer)
        if data.nbytes > self.capacity:
            self.capacity = data.nbytes
            GL.glBufferData(self.target, self.capacity, None, GL.GL_DYNAMIC_DRAW)
        if data.nbytes:
            GL.glBufferSubData(self.target, 0, data.nbytes, data)

    def delete(self) -> None:
        """Free the buffer."""
        GL.glDeleteBuffers(1, [self.buffer])


class _Target:
    """A framebuffer object with one colour texture of ``internal_format`` and a depth buffer, plus a
    depth-only framebuffer on the same depth buffer (for marking saturated pixels while the colour
    texture is read)."""

    def __init__(self, internal_format: int) -> None:
        self.internal_format = internal_format
        self.fbo, self.depth_fbo = GL.glGenFramebuffers(2)
        self.color = GL.glGenTextures(1)
        self.depth = GL.glGenRenderbuffers(1)
        self.size = (0, 0)

    def resize(self, width: int, height: int) -> None:
        """(Re)allocate the colour texture and depth buffer at ``width`` x ``height`` (nothing when
        unchanged)."""
        if self.size == (width, height):
            return
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.color)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, self.internal_format, width, height, 0, GL.GL_RGBA, GL.GL_FLOAT, None)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.depth)
        GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_DEPTH_COMPONENT24, width, height)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, self.color, 0)
        GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, self.depth)
        self._check(width, height)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.depth_fbo)
        GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, self.depth)
        GL.glDrawBuffer(GL.GL_NONE)
        GL.glReadBuffer(GL.GL_NONE)
        self._check(width, height)
        self.size = (width, height)

    @staticmethod
    def _check(width: int, height: int) -> None:
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"framebuffer {width}x{height} incomplete (status {status:#x})")

    def delete(self) -> None:
        """Free the framebuffers, the texture and the depth buffer."""
        GL.glDeleteFramebuffers(2, [self.fbo, self.depth_fbo])
        GL.glDeleteTextures([self.color])
        GL.glDeleteRenderbuffers(1, [self.depth])


@dataclass
class FrameTimings:
    """Milliseconds spent in each stage of the last :meth:`SplatRenderer.render`."""

    upload_ms: float = 0.0
    sort_ms: float = 0.0
    draw_ms: float = 0.0
    readback_ms: float = 0.0
    sorted_now: bool = False
    primitive: str = "points"  # "points" (sprites) or "quads" (instanced, when sprites could be too big)

    @property
    def total_ms(self) -> float:
        """Upload + sort + draw + readback."""
        return self.upload_ms + self.sort_ms + self.draw_ms + self.readback_ms


class SplatRenderer:
    """Offscreen splat renderer on a hidden-window OpenGL context (see the module docstring).

    Raises :class:`persona_studio.viewer.gl_context.GLContextError` when no context can be made.

    Splats are drawn as point sprites (one primitive per Gaussian: on Mesa llvmpipe about 2x
    cheaper to set up than two triangles), or as instanced quads for frames in which a sprite
    could exceed the driver's largest point size. The framebuffer has a guard band of half that
    size around the image, because GL drops a point whose centre is outside the viewport.
    """

    def __init__(self, shader_dir: Path = SHADER_DIR) -> None:
        self._context = HiddenGLContext()
        try:
            self._build(shader_dir)
        except BaseException:
            self._context.destroy()
            raise
        self._gaussians: GaussianArrays | None = None
        self._max_scales: np.ndarray | None = None  # [N] largest axis of each Gaussian
        self._means_version = 0
        self._pending_upload: set[str] = set()
        self._sorter = DepthSorter()
        self._skeleton: tuple[np.ndarray, np.ndarray] | None = None  # bones [B, 2, 3], joints [J, 2, 3]
        self._mesh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # vertices, faces, edges
        self._overlays_dirty = False
        self.timings = FrameTimings()

    # -- GL objects -------------------------------------------------------------------------------
    def _build(self, shader_dir: Path) -> None:
        self._points_program = Program(("splat_common.glsl", "splat_points.vert"), "splat.frag", shader_dir)
        self._quads_program = Program(("splat_common.glsl", "splat_quads.vert"), "splat.frag", shader_dir)
        self._resolve_program = Program("fullscreen.vert", "depth_resolve.frag", shader_dir)
        self._segment_program = Program("segment.vert", "segment.frag", shader_dir)
        self._mesh_program = Program("mesh_depth.vert", "depth_only.frag", shader_dir)
        self._saturation_program = Program("fullscreen.vert", "saturation.frag", shader_dir)
        self._solid_program = Program("fullscreen.vert", "solid.frag", shader_dir)
        largest_point = float(GL.glGetFloatv(GL.GL_POINT_SIZE_RANGE)[1])
        self._margin = int(min(largest_point // 2, MAX_GUARD_BAND))  # pixels around the image
        self._arrays = {name: _GaussianBuffer() for name in ("mean_opacity", "scale", "quat", "color", "normal", "part")}
        self._order = _ArrayBuffer()  # [N] uint32 Gaussian indices, front to back

        self._points_vao = GL.glGenVertexArrays(1)  # the order buffer as element indices
        GL.glBindVertexArray(self._points_vao)
        for location, name in enumerate(("mean_opacity", "scale", "quat", "color")):
            self._arrays[name].bind_attribute(location)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self._order.buffer)

        self._quads_vao = GL.glGenVertexArrays(1)  # the order buffer as a per-instance index
        GL.glBindVertexArray(self._quads_vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._order.buffer)
        GL.glEnableVertexAttribArray(0)
        GL.glVertexAttribIPointer(0, 1, GL.GL_UNSIGNED_INT, 4, None)
        GL.glVertexAttribDivisor(0, 1)

        self._bones, self._joints, self._edges = _ArrayBuffer(), _ArrayBuffer(), _ArrayBuffer()
        self._segment_vaos = {}
        for name, buf in (("bones", self._bones), ("joints", self._joints), ("edges", self._edges)):
            vao = GL.glGenVertexArrays(1)
            GL.glBindVertexArray(vao)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, buf.buffer)
            for location, offset in ((0, 0), (1, 12)):  # [S, 2, 3] float32: start, end
                GL.glEnableVertexAttribArray(location)
                GL.glVertexAttribPointer(location, 3, GL.GL_FLOAT, GL.GL_FALSE, 24, ctypes.c_void_p(offset))
                GL.glVertexAttribDivisor(location, 1)
            self._segment_vaos[name] = vao

        self._mesh_vertices, self._mesh_faces = _ArrayBuffer(), _ArrayBuffer(GL.GL_ELEMENT_ARRAY_BUFFER)
        self._mesh_vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self._mesh_vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._mesh_vertices.buffer)
        GL.glEnableVertexAttribArray(0)
        GL.glVertexAttribPointer(0, 3, GL.GL_FLOAT, GL.GL_FALSE, 12, None)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self._mesh_faces.buffer)
        self._empty_vao = GL.glGenVertexArrays(1)  # core profile draws need a bound VAO
        GL.glBindVertexArray(0)

        self._output = _Target(GL.GL_RGBA8)
        self._accumulation = _Target(GL.GL_RGBA32F)  # depth mode: sum w z needs floats
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        GL.glEnable(GL.GL_PROGRAM_POINT_SIZE)

    # -- scene ------------------------------------------------------------------------------------
    @property
    def gaussian_count(self) -> int:
        """N, the Gaussians held (0 before any)."""
        return 0 if self._gaussians is None else self._gaussians.count

    @property
    def sort_count(self) -> int:
        """How many depth sorts were actually done (sorts are skipped when nothing changed)."""
        return self._sorter.sort_count

    def set_gaussians(self, means, scales, colors, opacities, *, quats=None, normals=None,
                      part_colors=None) -> None:
        """Replace all Gaussians. ``scales`` [N] isotropic or [N, 3] with ``quats`` [N, 4] wxyz."""
        self.set_gaussian_arrays(gaussian_arrays(means, scales, colors, opacities, quats=quats, normals=normals,
                                                 part_colors=part_colors))

    def set_gaussian_arrays(self, gaussians: GaussianArrays) -> None:
        """Replace all Gaussians with already validated arrays (everything is uploaded and sorted again)."""
        self._gaussians = gaussians
        self._max_scales = gaussians.scales.max(axis=1, initial=0.0)
        self._means_version += 1
        self._pending_upload = set(_ARRAYS_OF.values())

    def update_gaussians(self, **arrays) -> None:
        """Replace some arrays of the current Gaussians (same count), e.g. new ``means`` per frame.

        Keys: means, scales, quats, colors, opacities, normals, part_colors.
        """
        if self._gaussians is None:
            raise RuntimeError("update_gaussians needs Gaussians: call set_gaussians first")
        self._gaussians = replace_gaussian_arrays(self._gaussians, **arrays)
        self._pending_upload |= {_ARRAYS_OF[name] for name in arrays}
        if "scales" in arrays:
            self._max_scales = self._gaussians.scales.max(axis=1, initial=0.0)
        if "means" in arrays:
            self._means_version += 1

    def set_skeleton(self, joints, parents=None) -> None:
        """Skeleton overlay: [J, 3] joint positions, [J] parent indices (-1 for roots); None clears."""
        if joints is None:
            self._skeleton = None
        else:
            joints_arr = to_numpy(joints, "joints").reshape(-1, 3)
            self._skeleton = (skeleton_segments(joints_arr, parents),
                              np.ascontiguousarray(np.repeat(joints_arr[:, None], 2, axis=1)))
        self._overlays_dirty = True

    def set_mesh(self, vertices, faces=None) -> None:
        """Wireframe overlay of a triangle mesh: [V, 3] vertices, [F, 3] faces (omit faces to move the
        vertices of the current mesh); None clears."""
        if vertices is None:
            self._mesh = None
        else:
            verts = to_numpy(vertices, "mesh vertices").reshape(-1, 3)
            if faces is None:
                if self._mesh is None or len(self._mesh[0]) != len(verts):
                    raise ValueError("set_mesh without faces moves the current mesh: give the same vertex count")
                _, faces_arr, edges = self._mesh
            else:
                edges = mesh_edges(faces, len(verts))
                faces_arr = np.ascontiguousarray(faces, dtype=np.uint32)
            self._mesh = (np.ascontiguousarray(verts), faces_arr, edges)
        self._overlays_dirty = True

    # -- rendering --------------------------------------------------------------------------------
    def render(self, camera: Camera, options: RenderOptions = RenderOptions()) -> np.ndarray:
        """Draw the scene seen by ``camera`` -> [H, W, 4] float32 RGBA in [0, 1], top row first
        (premultiplied over ``options.background``; opaque when the background is)."""
        self._context.make_current()
        count = self.gaussian_count
        if options.mode is RenderMode.NORMALS and count and self._gaussians.normals is None:
            raise ValueError("normals mode needs per-Gaussian normals: pass normals= to set_gaussians")
        if options.mode is RenderMode.PARTS and count and self._gaussians.part_colors is None:
            raise ValueError("parts mode needs per-Gaussian part colours: pass part_colors= to set_gaussians")
        timings = FrameTimings()

        start = time.perf_counter()
        self._upload()
        if self._overlays_dirty:
            self._upload_overlays()
        timings.upload_ms = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        if count:
            order, timings.sorted_now = self._sorter.order(self._gaussians.means, self._means_version, camera.R[2])
            if timings.sorted_now:
                self._order.upload(order)
        timings.sort_ms = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        framebuffer = self._framebuffer_camera(camera)
        self._output.resize(framebuffer.width, framebuffer.height)
        GL.glViewport(0, 0, framebuffer.width, framebuffer.height)
        GL.glEnable(GL.GL_SCISSOR_TEST)  # the guard band is never drawn into
        GL.glScissor(self._margin, self._margin, camera.width, camera.height)
        background = _premultiplied(options.background)
        timings.primitive = "points" if self._sprites_fit(camera, options) else "quads"
        if options.mode is RenderMode.DEPTH:
            self._accumulation.resize(framebuffer.width, framebuffer.height)
            self._draw_splats(camera, options, self._accumulation, timings.primitive)
            self._resolve_depth(camera, options, background)
        else:
            self._draw_splats(camera, options, self._output, timings.primitive)
            self._composite_under(np.array([0, 0, 0, 1], np.float32) if options.mode is RenderMode.ALPHA else background)
        self._draw_overlays(framebuffer, options)
        GL.glFinish()
        timings.draw_ms = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        image = self._read_output(camera.width, camera.height)
        timings.readback_ms = (time.perf_counter() - start) * 1e3
        self.timings = timings
        return image

    def _framebuffer_camera(self, camera: Camera) -> Camera:
        """``camera`` widened by the guard band: the same view on the whole framebuffer."""
        m = self._margin
        return Camera(camera.R, camera.t, camera.fx, camera.fy, camera.cx + m, camera.cy + m,
                      camera.width + 2 * m, camera.height + 2 * m)

    def _sprites_fit(self, camera: Camera, options: RenderOptions) -> bool:
        """Whether every visible splat's sprite surely fits in the largest point size (2 x margin).

        Bounds the 2D standard deviation by |J| * largest scale, with |J|^2 <= (f/z)^2 (1 + lx^2 + ly^2)
        for the Jacobian's clamped tangents lx, ly; the sprite half-size is at most sqrt(2) * k sigma.
        """
        g = self._gaussians
        if g is None or not g.count:
            return True
        depth = g.means @ camera.R[2].astype(np.float32) + np.float32(camera.t[2])  # [N]
        visible = (depth > options.near) & (depth < options.far)
        if not visible.any():
            return True
        focal = max(camera.fx, camera.fy)
        lim_x = (max(camera.cx, camera.width - camera.cx) + 0.15 * camera.width) / camera.fx
        lim_y = (max(camera.cy, camera.height - camera.cy) + 0.15 * camera.height) / camera.fy
        sigma = focal * float((self._max_scales[visible] / depth[visible]).max()) * math.sqrt(1 + lim_x**2 + lim_y**2)
        half_size = math.sqrt(2.0) * MAX_SIGMA * math.sqrt(sigma**2 + EPS_2D)
        return half_size <= self._margin

    def _upload(self) -> None:
        g = self._gaussians
        if g is None or not self._pending_upload:
            return
        sources = {
            "mean_opacity": lambda: _rgba_texels(g.means, g.opacities),
            "scale": lambda: _rgba_texels(g.scales),
            "quat": lambda: g.quats,
            "color": lambda: _rgba_texels(g.colors),
            "normal": lambda: None if g.normals is None else _rgba_texels(g.normals),
            "part": lambda: None if g.part_colors is None else _rgba_texels(g.part_colors),
        }
        for name in self._pending_upload:
            texels = sources[name]()
            if texels is not None:
                self._arrays[name].upload(texels)
        self._pending_upload = set()

    def _draw_splats(self, camera: Camera, options: RenderOptions, target: _Target, primitive: str) -> None:
        """Splats front to back into ``target`` (cleared to transparent), in SATURATION_PASSES batches;
        after each batch but the last, pixels that became opaque are closed to later batches."""
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, target.fbo)
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClearDepth(1.0)
        GL.glDepthMask(GL.GL_TRUE)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        count = self.gaussian_count
        if not count:
            return
        color_source = self._arrays[{RenderMode.NORMALS: "normal", RenderMode.PARTS: "part"}.get(options.mode, "color")]
        program = self._points_program if primitive == "points" else self._quads_program
        program.use()
        program.set("u_R", camera.R)
        program.set("u_t", camera.t)
        program.set("u_intrinsics", (camera.fx, camera.fy, camera.cx, camera.cy))
        program.set("u_size", (camera.width, camera.height))
        program.set("u_margin", float(self._margin))
        program.set("u_clip", (options.near, options.far))
        program.set("u_eps2d", EPS_2D)
        program.set("u_max_sigma", MAX_SIGMA)
        program.set("u_max_alpha", MAX_ALPHA)
        program.set("u_mode", _SHADER_MODE[options.mode])
        if primitive == "points":
            program.set("u_max_point_size", 2.0 * self._margin)
            GL.glBindVertexArray(self._points_vao)
            color_source.bind_attribute(3)
        else:
            for unit, (uniform, array) in enumerate((("u_mean_opacity", self._arrays["mean_opacity"]),
                                                     ("u_scale", self._arrays["scale"]),
                                                     ("u_quat", self._arrays["quat"]), ("u_color", color_source))):
                array.bind_texture(unit)
                program.set(uniform, unit)
            GL.glBindVertexArray(self._quads_vao)
        vao = self._points_vao if primitive == "points" else self._quads_vao
        opaque_alpha = SATURATED_ALPHA_8BIT if target is self._output else SATURATED_ALPHA_FLOAT
        bounds = np.linspace(0, count, SATURATION_PASSES + 1).round().astype(int)
        for batch, (first, last) in enumerate(itertools.pairwise(bounds)):
            if batch:
                self._close_saturated_pixels(target, opaque_alpha)
                program.use()
                GL.glBindVertexArray(vao)
            _set_blending_state(close_test=batch > 0)
            if primitive == "points":
                GL.glDrawElements(GL.GL_POINTS, int(last - first), GL.GL_UNSIGNED_INT, ctypes.c_void_p(4 * int(first)))
            else:
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._order.buffer)
                GL.glVertexAttribIPointer(0, 1, GL.GL_UNSIGNED_INT, 4, ctypes.c_void_p(4 * int(first)))
                GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, int(last - first))
        GL.glDisable(GL.GL_DEPTH_TEST)

    def _close_saturated_pixels(self, target: _Target, opaque_alpha: float) -> None:
        """Write depth 0.5 where ``target``'s accumulated alpha reached ``opaque_alpha``."""
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, target.depth_fbo)
        GL.glDisable(GL.GL_BLEND)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_ALWAYS)
        GL.glDepthMask(GL.GL_TRUE)
        program = self._saturation_program
        program.use()
        GL.glActiveTexture(GL.GL_TEXTURE0 + ACCUMULATED_UNIT)
        GL.glBindTexture(GL.GL_TEXTURE_2D, target.color)
        program.set("u_accumulated", ACCUMULATED_UNIT)
        program.set("u_opaque_alpha", float(opaque_alpha))
        GL.glBindVertexArray(self._empty_vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, target.fbo)

    def _composite_under(self, background: np.ndarray) -> None:
        """Blend the (premultiplied) background under what the splats left in the output target."""
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._output.fbo)
        _set_blending_state(close_test=False)
        self._solid_program.use()
        self._solid_program.set("u_color", background)
        GL.glBindVertexArray(self._empty_vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)

    def _resolve_depth(self, camera: Camera, options: RenderOptions, background: np.ndarray) -> None:
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._output.fbo)
        GL.glDisable(GL.GL_BLEND)
        program = self._resolve_program
        program.use()
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self._accumulation.color)
        program.set("u_accumulated", 0)
        program.set("u_depth_range", self._depth_range(camera, options))
        program.set("u_background", background)
        GL.glBindVertexArray(self._empty_vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)

    def _depth_range(self, camera: Camera, options: RenderOptions) -> tuple[float, float]:
        """Nearest and farthest camera depth of the Gaussian centres inside the clip range."""
        if not self.gaussian_count:
            return options.near, options.far
        depth = self._gaussians.means @ camera.R[2].astype(np.float32) + np.float32(camera.t[2])
        depth = depth[(depth > options.near) & (depth < options.far)]
        if len(depth) == 0:
            return options.near, options.far
        return float(depth.min()), float(depth.max())

    def _draw_overlays(self, framebuffer: Camera, options: RenderOptions) -> None:
        mesh = self._mesh if options.show_mesh else None
        skeleton = self._skeleton if options.show_skeleton else None
        if mesh is None and skeleton is None:
            return
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._output.fbo)
        GL.glDepthMask(GL.GL_TRUE)
        GL.glClear(GL.GL_DEPTH_BUFFER_BIT)
        projection = gl_projection(framebuffer, options.near, options.far)
        if mesh is not None:  # hidden-line wireframe: the mesh's own depth hides its back edges
            GL.glDisable(GL.GL_BLEND)
            GL.glEnable(GL.GL_DEPTH_TEST)
            GL.glDepthFunc(GL.GL_LEQUAL)
            GL.glColorMask(GL.GL_FALSE, GL.GL_FALSE, GL.GL_FALSE, GL.GL_FALSE)
            GL.glEnable(GL.GL_POLYGON_OFFSET_FILL)
            GL.glPolygonOffset(1.0, 1.0)
            self._mesh_program.use()
            self._mesh_program.set("u_R", framebuffer.R)
            self._mesh_program.set("u_t", framebuffer.t)
            self._mesh_program.set("u_projection", projection)
            GL.glBindVertexArray(self._mesh_vao)
            GL.glDrawElements(GL.GL_TRIANGLES, mesh[1].size, GL.GL_UNSIGNED_INT, None)
            GL.glDisable(GL.GL_POLYGON_OFFSET_FILL)
            GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
            GL.glDepthMask(GL.GL_FALSE)
            GL.glEnable(GL.GL_BLEND)
            GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
            self._draw_segments("edges", len(mesh[2]), framebuffer, options, projection, 1.0, options.mesh_color,
                                round_ends=False)
            GL.glDepthMask(GL.GL_TRUE)
        GL.glDisable(GL.GL_DEPTH_TEST)  # the skeleton stays visible through everything
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        if skeleton is not None:
            self._draw_segments("bones", len(skeleton[0]), framebuffer, options, projection, options.bone_width,
                                options.skeleton_color, round_ends=False)
            self._draw_segments("joints", len(skeleton[1]), framebuffer, options, projection, options.joint_size,
                                options.skeleton_color, round_ends=True)

    def _draw_segments(self, name: str, count: int, framebuffer: Camera, options: RenderOptions,
                       projection: np.ndarray, width: float, color, *, round_ends: bool) -> None:
        if not count:
            return
        program = self._segment_program
        program.use()
        program.set("u_R", framebuffer.R)
        program.set("u_t", framebuffer.t)
        program.set("u_projection", projection)
        program.set("u_size", (framebuffer.width, framebuffer.height))
        program.set("u_width", float(width))
        program.set("u_near", options.near)
        program.set("u_color", _premultiplied(color))
        program.set("u_round", bool(round_ends))
        GL.glBindVertexArray(self._segment_vaos[name])
        GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, count)

    def _upload_overlays(self) -> None:
        if self._skeleton is not None:
            self._bones.upload(self._skeleton[0])
            self._joints.upload(self._skeleton[1])
        if self._mesh is not None:
            vertices, faces, edges = self._mesh
            self._mesh_vertices.upload(vertices)
            self._mesh_faces.upload(faces)
            self._edges.upload(vertices[edges])  # [E, 2, 3]
        self._overlays_dirty = False

    def _read_output(self, width: int, height: int) -> np.ndarray:
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._output.fbo)
        raw = np.empty((height, width, 4), dtype=np.uint8)
        GL.glReadPixels(self._margin, self._margin, width, height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, raw)
        return np.multiply(raw, np.float32(1.0 / 255.0), dtype=np.float32)

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Free the GL objects and the context (on the owning thread)."""
        if not self._context.alive:
            return
        self._context.make_current()
        for program in (self._points_program, self._quads_program, self._resolve_program, self._segment_program,
                        self._mesh_program, self._saturation_program, self._solid_program):
            program.delete()
        for buf in (*self._arrays.values(), self._order, self._bones, self._joints, self._edges,
                    self._mesh_vertices, self._mesh_faces):
            buf.delete()
        vaos = [self._points_vao, self._quads_vao, self._mesh_vao, self._empty_vao, *self._segment_vaos.values()]
        GL.glDeleteVertexArrays(len(vaos), vaos)
        self._output.delete()
        self._accumulation.delete()
        self._context.destroy()

    def __enter__(self) -> SplatRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


