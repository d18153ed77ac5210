"""Synchronous OpenGL splat renderer: Gaussians (+ skeleton / mesh overlays) -> float32 RGBA image.

Pipeline per frame: upload what changed (``glBufferSubData`` into texture buffers), re-sort the
Gaussians back to front only when the view direction or the means changed (:mod:`depth_sort`),
draw one instanced quad per Gaussian (EWA projection in ``shaders/splat.vert``), draw overlays on
top, read the framebuffer back as [H, W, 4] float32 in [0, 1], top row first.

Image formation matches the project's differentiable rasteriser (gsplat's rules): same camera
convention (OpenCV R, t and pixel intrinsics, pixel centres at +0.5), same 2D covariance with
0.3 px^2 dilation, ``alpha = min(MAX_ALPHA, opacity * exp(-maha^2 / 2))``, fragments below 1/255
dropped, ordered by camera depth of the centres. Colours are composited over the background:
``rgb = sum_i T_i a_i c_i + T_N * background``.

The renderer owns a GL context current on the thread that built it; use it from that thread only
(:class:`persona_studio.viewer.render_thread.RenderThread` runs one on its own thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
from OpenGL import GL

from persona_studio.render.camera import Camera
from persona_studio.viewer.depth_sort import DepthSorter
from persona_studio.viewer.gl_context import HiddenGLContext
from persona_studio.viewer.glsl import SHADER_DIR, Program
from persona_studio.viewer.scene import (GaussianArrays, gaussian_arrays, mesh_edges, replace_gaussian_arrays,
                                         skeleton_segments, to_numpy)

MAX_ALPHA = 0.99  # the project rasteriser's cap on one Gaussian's alpha
EPS_2D = 0.3  # pixels^2 added to the 2D covariance diagonal (gsplat's eps2d)
MAX_SIGMA = 3.0  # quad half-extent cap, in standard deviations


class RenderMode(str, Enum):
    RGB = "rgb"  # the Gaussians' colours
    DEPTH = "depth"  # expected depth, colour-mapped (near warm, far cool)
    NORMALS = "normals"  # caller-supplied per-Gaussian normals, in camera space, as normal-map colours
    PARTS = "parts"  # caller-supplied per-Gaussian part colours
    ALPHA = "alpha"  # accumulated opacity, white on black


_SHADER_MODE = {RenderMode.RGB: 0, RenderMode.PARTS: 0, RenderMode.DEPTH: 1, RenderMode.NORMALS: 2,
                RenderMode.ALPHA: 3}


@dataclass(frozen=True)
class RenderOptions:
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


class _TexelBuffer:
    """An RGBA32F buffer texture (samplerBuffer) whose storage grows on demand."""

    def __init__(self) -> None:
        self.buffer = GL.glGenBuffers(1)
        self.texture = GL.glGenTextures(1)
        self.capacity = 0

    def upload(self, texels: np.ndarray) -> None:
        data = np.ascontiguousarray(texels, dtype=np.float32)
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, self.buffer)
        if data.nbytes > self.capacity or self.capacity == 0:
            self.capacity = max(data.nbytes, 16)
            GL.glBufferData(GL.GL_TEXTURE_BUFFER, self.capacity, None, GL.GL_DYNAMIC_DRAW)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.texture)
            GL.glTexBuffer(GL.GL_TEXTURE_BUFFER, GL.GL_RGBA32F, self.buffer)
        if data.nbytes:
            GL.glBufferSubData(GL.GL_TEXTURE_BUFFER, 0, data.nbytes, data)

    def bind(self, unit: int) -> None:
        GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.texture)

    def delete(self) -> None:
        GL.glDeleteTextures([self.texture])
        GL.glDeleteBuffers(1, [self.buffer])


class _ArrayBuffer:
    """A vertex/index buffer whose storage grows on demand; uploads with glBufferSubData."""

    def __init__(self, target: int = GL.GL_ARRAY_BUFFER) -> None:
        self.target = target
        self.buffer = GL.glGenBuffers(1)
        self.capacity = 0

    def upload(self, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data)
        GL.glBindBuffer(self.target, self.buffer)
        if data.nbytes > self.capacity:
            self.capacity = data.nbytes
            GL.glBufferData(self.target, self.capacity, None, GL.GL_DYNAMIC_DRAW)
        if data.nbytes:
            GL.glBufferSubData(self.target, 0, data.nbytes, data)

    def delete(self) -> None:
        GL.glDeleteBuffers(1, [self.buffer])


class _Target:
    """A framebuffer object with one colour texture of ``internal_format`` (+ optional depth)."""

    def __init__(self, internal_format: int, depth: bool) -> None:
        self.internal_format = internal_format
        self.fbo = GL.glGenFramebuffers(1)
        self.color = GL.glGenTextures(1)
        self.depth = GL.glGenRenderbuffers(1) if depth else None
        self.size = (0, 0)

    def resize(self, width: int, height: int) -> None:
        if self.size == (width, height):
            return
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.color)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, self.internal_format, width, height, 0, GL.GL_RGBA, GL.GL_FLOAT, None)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, self.color, 0)
        if self.depth is not None:
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.depth)
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_DEPTH_COMPONENT24, width, height)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, self.depth)
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"framebuffer {width}x{height} incomplete (status {status:#x})")
        self.size = (width, height)

    def delete(self) -> None:
        GL.glDeleteFramebuffers(1, [self.fbo])
        GL.glDeleteTextures([self.color])
        if self.depth is not None:
            GL.glDeleteRenderbuffers(1, [self.depth])


@dataclass
class FrameTimings:
    """Milliseconds spent in each stage of the last :meth:`SplatRenderer.render`."""

    upload_ms: float = 0.0
    sort_ms: float = 0.0
    draw_ms: float = 0.0
    readback_ms: float = 0.0
    sorted_now: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return self.upload_ms + self.sort_ms + self.draw_ms + self.readback_ms


class SplatRenderer:
    """Offscreen splat renderer on a hidden-window OpenGL context (see the module docstring).

    Raises :class:`persona_studio.viewer.gl_context.GLContextError` when no context can be made.
    """

    def __init__(self, shader_dir: Path = SHADER_DIR) -> None:
        self._context = HiddenGLContext()
        try:
            self._build(shader_dir)
        except BaseException:
            self._context.destroy()
            raise
        self._gaussians: GaussianArrays | None = None
        self._means_version = 0
        self._pending_upload: set[str] = set()
        self._sorter = DepthSorter()
        self._skeleton: tuple[np.ndarray, np.ndarray] | None = None  # bones [B, 2, 3], joints [J, 2, 3]
        self._mesh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # vertices, faces, edges
        self._overlays_dirty = False
        self.timings = FrameTimings()

    # -- GL objects -------------------------------------------------------------------------------
    def _build(self, shader_dir: Path) -> None:
        self._splat_program = Program("splat.vert", "splat.frag", shader_dir)
        self._resolve_program = Program("fullscreen.vert", "depth_resolve.frag", shader_dir)
        self._segment_program = Program("segment.vert", "segment.frag", shader_dir)
        self._mesh_program = Program("mesh_depth.vert", "depth_only.frag", shader_dir)
        self._texels = {name: _TexelBuffer() for name in ("mean_opacity", "scale", "quat", "color", "normal", "part")}
        self._order = _ArrayBuffer()
        self._splat_vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self._splat_vao)
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
            for attribute, offset in ((0, 0), (1, 12)):
                GL.glEnableVertexAttribArray(attribute)
                GL.glVertexAttribPointer(attribute, 3, GL.GL_FLOAT, GL.GL_FALSE, 24, GL.ctypes.c_void_p(offset))
                GL.glVertexAttribDivisor(attribute, 1)
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

        self._output = _Target(GL.GL_RGBA8, depth=True)
        self._accumulation = _Target(GL.GL_RGBA32F, depth=False)  # depth mode: sum w z needs floats
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)

    # -- scene ------------------------------------------------------------------------------------
    @property
    def gaussian_count(self) -> int:
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
        self._gaussians = gaussians
        self._means_version += 1
        self._pending_upload = {"mean_opacity", "scale", "quat", "color", "normal", "part"}

    def update_gaussians(self, **arrays) -> None:
        """Replace some arrays of the current Gaussians (same count), e.g. new ``means`` per frame.

        Keys: means, scales, quats, colors, opacities, normals, part_colors.
        """
        if self._gaussians is None:
            raise RuntimeError("update_gaussians needs Gaussians: call set_gaussians first")
        self._gaussians = replace_gaussian_arrays(self._gaussians, **arrays)
        self._pending_upload |= {_TEXELS_OF[name] for name in arrays}
        if "means" in arrays:
            self._means_version += 1

    def set_skeleton(self, joints, parents) -> None:
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
                faces_arr = np.ascontiguousarray(faces, dtype=np.int64)
                edges = mesh_edges(faces_arr, len(verts))
                faces_arr = faces_arr.astype(np.uint32)
            self._mesh = (np.ascontiguousarray(verts), faces_arr, edges)
        self._overlays_dirty = True

    # -- rendering --------------------------------------------------------------------------------
    def render(self, camera: Camera, options: RenderOptions = RenderOptions()) -> np.ndarray:
        """Draw the scene seen by ``camera`` -> [H, W, 4] float32 RGBA in [0, 1], top row first
        (premultiplied over ``options.background``; opaque when the background is)."""
        self._context.make_current()
        if options.mode is RenderMode.NORMALS and self.gaussian_count and self._gaussians.normals is None:
            raise ValueError("normals mode needs per-Gaussian normals: pass normals= to set_gaussians")
        if options.mode is RenderMode.PARTS and self.gaussian_count and self._gaussians.part_colors is None:
            raise ValueError("parts mode needs per-Gaussian part colours: pass part_colors= to set_gaussians")
        width, height = camera.width, camera.height
        timings = FrameTimings()

        start = time.perf_counter()
        self._upload()
        timings.upload_ms = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        count = self.gaussian_count
        if count:
            means = self._gaussians.means
            order, timings.sorted_now = self._sorter.order(means, self._means_version, camera.R[2])
            if timings.sorted_now:
                self._order.upload(order)
        timings.sort_ms = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        self._output.resize(width, height)
        GL.glViewport(0, 0, width, height)
        background = _premultiplied(options.background)
        if options.mode is RenderMode.DEPTH:
            self._accumulation.resize(width, height)
            self._draw_splats(camera, options, self._accumulation, np.zeros(4, dtype=np.float32), count)
            self._resolve_depth(camera, options, background)
        else:
            clear = np.array([0, 0, 0, 1], dtype=np.float32) if options.mode is RenderMode.ALPHA else background
            self._draw_splats(camera, options, self._output, clear, count)
        self._draw_overlays(camera, options)
        GL.glFinish()
        timings.draw_ms = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        image = self._read_output(width, height)
        timings.readback_ms = (time.perf_counter() - start) * 1e3
        self.timings = timings
        return image

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
                self._texels[name].upload(texels)
        if "mean_opacity" in self._pending_upload and len(g.means) * 4 > self._order.capacity:
            self._order.upload(np.arange(len(g.means), dtype=np.uint32))  # grow; sorted right after
        self._pending_upload = set()

    def _draw_splats(self, camera: Camera, options: RenderOptions, target: _Target, clear: np.ndarray,
                     count: int) -> None:
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, target.fbo)
        GL.glClearColor(*(float(v) for v in clear))
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        if not count:
            return
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        program = self._splat_program
        program.use()
        color_source = {RenderMode.NORMALS: "normal", RenderMode.PARTS: "part"}.get(options.mode, "color")
        for unit, (uniform, name) in enumerate((("u_mean_opacity", "mean_opacity"), ("u_scale", "scale"),
                                                 ("u_quat", "quat"), ("u_color", color_source))):
            self._texels[name].bind(unit)
            program.set(uniform, unit)
        program.set("u_R", camera.R)
        program.set("u_t", camera.t)
        program.set("u_intrinsics", (camera.fx, camera.fy, camera.cx, camera.cy))
        program.set("u_size", (camera.width, camera.height))
        program.set("u_clip", (options.near, options.far))
        program.set("u_eps2d", EPS_2D)
        program.set("u_max_sigma", MAX_SIGMA)
        program.set("u_max_alpha", MAX_ALPHA)
        program.set("u_mode", _SHADER_MODE[options.mode])
        GL.glBindVertexArray(self._splat_vao)
        GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, count)

    def _resolve_depth(self, camera: Camera, options: RenderOptions, background: np.ndarray) -> None:
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._output.fbo)
        GL.glClear(GL.GL_DEPTH_BUFFER_BIT)
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

    def _draw_overlays(self, camera: Camera, options: RenderOptions) -> None:
        if self._overlays_dirty:
            self._upload_overlays()
        mesh = self._mesh if options.show_mesh else None
        skeleton = self._skeleton if options.show_skeleton else None
        if mesh is None and skeleton is None:
            return
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._output.fbo)
        projection = gl_projection(camera, options.near, options.far)
        if mesh is not None:  # hidden-line wireframe: the mesh's own depth hides its back edges
            GL.glDisable(GL.GL_BLEND)
            GL.glEnable(GL.GL_DEPTH_TEST)
            GL.glDepthFunc(GL.GL_LEQUAL)
            GL.glColorMask(GL.GL_FALSE, GL.GL_FALSE, GL.GL_FALSE, GL.GL_FALSE)
            GL.glEnable(GL.GL_POLYGON_OFFSET_FILL)
            GL.glPolygonOffset(1.0, 1.0)
            self._mesh_program.use()
            self._mesh_program.set("u_R", camera.R)
            self._mesh_program.set("u_t", camera.t)
            self._mesh_program.set("u_projection", projection)
            GL.glBindVertexArray(self._mesh_vao)
            GL.glDrawElements(GL.GL_TRIANGLES, mesh[1].size, GL.GL_UNSIGNED_INT, None)
            GL.glDisable(GL.GL_POLYGON_OFFSET_FILL)
            GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
            GL.glDepthMask(GL.GL_FALSE)
            GL.glEnable(GL.GL_BLEND)
            GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
            self._draw_segments("edges", len(mesh[2]), camera, options, projection, 1.0, options.mesh_color, False)
            GL.glDepthMask(GL.GL_TRUE)
        GL.glDisable(GL.GL_DEPTH_TEST)  # the skeleton stays visible through everything
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        if skeleton is not None:
            self._draw_segments("bones", len(skeleton[0]), camera, options, projection, options.bone_width,
                                options.skeleton_color, False)
            self._draw_segments("joints", len(skeleton[1]), camera, options, projection, options.joint_size,
                                options.skeleton_color, True)

    def _draw_segments(self, name: str, count: int, camera: Camera, options: RenderOptions,
                       projection: np.ndarray, width: float, color, round_ends: bool) -> None:
        if not count:
            return
        program = self._segment_program
        program.use()
        program.set("u_R", camera.R)
        program.set("u_t", camera.t)
        program.set("u_projection", projection)
        program.set("u_size", (camera.width, camera.height))
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
        GL.glReadPixels(0, 0, width, height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, raw)
        return np.multiply(raw, np.float32(1.0 / 255.0), dtype=np.float32)

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Free the GL objects and the context (on the owning thread)."""
        if not self._context.alive:
            return
        self._context.make_current()
        for program in (self._splat_program, self._resolve_program, self._segment_program, self._mesh_program):
            program.delete()
        for buf in (*self._texels.values(), self._order, self._bones, self._joints, self._edges,
                    self._mesh_vertices, self._mesh_faces):
            buf.delete()
        GL.glDeleteVertexArrays(len(self._segment_vaos) + 3,
                                [self._splat_vao, self._mesh_vao, self._empty_vao, *self._segment_vaos.values()])
        self._output.delete()
        self._accumulation.delete()
        self._context.destroy()

    def __enter__(self) -> "SplatRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_TEXELS_OF = {"means": "mean_opacity", "opacities": "mean_opacity", "scales": "scale", "quats": "quat",
              "colors": "color", "normals": "normal", "part_colors": "part"}
