"""End-to-end playback frame rate of the app's viewport: motion frame -> posed Gaussians -> GL -> texture.

For each template level (0, 1, 2: one Gaussian per vertex of the open body model's template, ~13.5K,
~54K, ~216K) and viewport size (512^2, 1024^2), an avatar built as the trainer builds it (untrained,
but the pose MLP runs in full) plays the ``wave`` preset through the app's own pieces: the
:class:`~persona_studio.app.posers.AvatarPoser`, the viewer's render thread and a DearPyGui window
whose float32 raw texture receives every finished frame (``set_value``, then a window frame).

Two ways, both measured as displayed frames per second, as fast as they come (no clock):

- ``precomputed``: the app's way. The motion's frames are posed first by the
  :class:`~persona_studio.app.playback.PoseCache` worker (its time per frame is printed too); playback
  then only uploads positions and normals. Each GUI frame takes the newest rendered image, and as soon
  as one arrives the next motion frame is requested, so GL splatting and the GUI overlap as in the app.
- ``posed live``: no cache; every frame is posed (``Avatar.pose(fast=True)`` + normals + skeleton) on
  the loop's thread, then rendered and shown: what playback would be without the cache.

Each is measured at full resolution and at the app's fast-playback scale (0.5: frames rendered at half
the viewport's size and stretched by DearPyGui, as the app does while a motion plays).

    python benchmarks/playback.py                      # starts its own Xvfb when DISPLAY is not set
    python benchmarks/playback.py --levels 0 1 --sizes 512 --frames 60 --scales 0.5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from persona_studio.app.playback import PoseCache
from persona_studio.app.posers import AvatarPoser
from persona_studio.app.viewport import PLAYBACK_SCALE
from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.body.model import load_body_model
from persona_studio.body.motion import Motion, preset_motion_paths, read_motion
from persona_studio.body.skeleton import PARENTS
from support.virtual_display import virtual_display
from persona_studio.viewer.orbit import OrbitCamera


def build_avatar(model, level: int) -> Avatar:
    """An untrained avatar of the mean shape at ``level`` (grey; the pose MLP has its full size)."""
    config = AvatarConfig(level=level, mlp_width=64, triplane_resolution=64)

    def grey(interp, vertices):
        return np.full((len(vertices), 3), 0.7, np.float32)

    return Avatar.from_body_model(model, np.zeros(10, np.float32), grey, config, {"benchmark": True})


class Window:
    """A DearPyGui window showing one float32 raw texture, as the app's viewport does.

    One DearPyGui context serves the whole run (:meth:`show_texture` swaps the texture and resizes
    the viewport): destroying a context and making another in the same process segfaults inside
    DearPyGui under Xvfb now and then, as the app never does.
    """

    def __init__(self):
        import dearpygui.dearpygui as dpg

        self.dpg = dpg
        dpg.create_context()
        dpg.create_viewport(title="playback benchmark", width=552, height=572, vsync=False)
        self.texture = self.image_item = None
        self.image = None
        with dpg.texture_registry(tag="textures"):
            pass
        dpg.add_window(tag="main")
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()
        dpg.show_viewport()

    def show_texture(self, size: int, render_size: int) -> None:
        """Show a new ``render_size`` texture at ``size`` x ``size`` pixels (the previous one goes)."""
        dpg = self.dpg
        for item in (self.image_item, self.texture):
            if item is not None:
                dpg.delete_item(item)
        self.image = np.zeros((render_size, render_size, 4), np.float32)
        self.texture = dpg.add_raw_texture(render_size, render_size, default_value=self.image,
                                           format=dpg.mvFormat_Float_rgba, parent="textures")
        self.image_item = dpg.add_image(self.texture, width=size, height=size, parent="main")
        dpg.set_viewport_width(size + 40)
        dpg.set_viewport_height(size + 60)

    def show(self, image: np.ndarray | None) -> None:
        """Hand ``image`` to the texture (when there is a new one) and draw one window frame."""
        if image is not None:
            self.image = image  # the previous array stays alive until replaced: two buffers
            self.dpg.set_value(self.texture, image)
        self.dpg.render_dearpygui_frame()

    def close(self) -> None:
        """Destroy the DearPyGui context."""
        self.dpg.destroy_context()


def play_precomputed(render, window: Window, cache: PoseCache, frames: int) -> float:
    """Displayed frames per second when every motion frame is already posed."""
    def request(i: int) -> None:
        means, normals, joints = cache.frame(i % cache.num_frames)
        render.update_gaussians(means=means, normals=normals)
        render.set_skeleton(joints, PARENTS)

    request(0)
    while render.wait_frame(30) is None:
        pass
    shown, next_index = 0, 1
    request(next_index)
    start = time.perf_counter()
    while shown < frames:
        frame = render.poll_frame()
        window.show(None if frame is None else frame.image)
        if frame is not None:
            shown += 1
            next_index += 1
            request(next_index)
    return shown / (time.perf_counter() - start)


def play_posed_live(render, window: Window, poser: AvatarPoser, motion: Motion, frames: int) -> tuple[float, float]:
    """(displayed frames per second, posing seconds per frame) when each frame is posed when due."""
    posing = 0.0
    start = time.perf_counter()
    for i in range(frames):
        t0 = time.perf_counter()
        posed = poser.pose(motion.smplx_kwargs(slice(i, i + 1)))
        posing += time.perf_counter() - t0
        render.update_gaussians(means=posed.means[0], normals=posed.normals[0])
        render.set_skeleton(posed.joints[0], PARENTS)
        frame = render.wait_frame(60)
        window.show(None if frame is None else frame.image)
    return frames / (time.perf_counter() - start), posing / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--frames", type=int, default=60, help="frames played with posing precomputed")
    parser.add_argument("--live-frames", type=int, default=5, help="frames played while posing each one")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for posing (the app uses cores - 1)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, PLAYBACK_SCALE],
                        help="render scales (the app plays at 0.5 with fast playback on)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    motion = read_motion(preset_motion_paths()["wave"])
    clip = Motion(motion.poses[:args.frames], motion.trans[:args.frames], motion.fps)
    model = load_body_model("open", num_betas=10)
    print(f"wave preset, {clip.num_frames} frames; torch threads {args.threads}; FPS = frames shown per second")
    with virtual_display():
        from persona_studio.viewer.render_thread import RenderThread

        window = Window()
        for level in args.levels:
            poser = AvatarPoser(build_avatar(model, level))
            t0 = time.perf_counter()
            cache = PoseCache(poser, clip, clip.smplx_kwargs, threads=args.threads).start()
            cache.join()
            pose_s = (time.perf_counter() - t0) / clip.num_frames
            arrays = poser.arrays()
            first = cache.frame(0)
            for size in args.sizes:
                for scale in args.scales:
                    render_size = max(int(size * scale), 16)
                    window.show_texture(size, render_size)
                    with RenderThread() as render:
                        camera = OrbitCamera(target=np.zeros(3))
                        camera.fit(first[0], render_size, render_size, margin=1.1)
                        render.set_gaussians(first[0], arrays["scales"], arrays["colors"], arrays["opacities"],
                                             normals=first[1], part_colors=arrays["part_colors"])
                        render.set_view(camera.camera(render_size, render_size))
                        precomputed = play_precomputed(render, window, cache, args.frames)
                        live, live_pose_s = play_posed_live(render, window, poser, clip, args.live_frames)
                    print(f"level {level} ({poser.count:,} Gaussians) {size}x{size} rendered at {render_size}x{render_size}: "
                          f"precomputed {precomputed:5.1f} FPS (posing beforehand {pose_s * 1e3:.0f} ms/frame) | "
                          f"posed live {live:5.2f} FPS (posing {live_pose_s * 1e3:.0f} ms/frame)", flush=True)
        window.close()

if __name__ == "__main__":
    main()
