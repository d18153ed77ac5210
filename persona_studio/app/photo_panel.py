"""Photo panel: open / drop / sample photo, recent workspaces, the photo with its mask and keypoint
overlay, and the fit's figures."""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
from PIL import Image

from persona_studio.app import workspace as ws

PHOTO_BOX = (410, 520)  # largest displayed photo, pixels
STRIP_BOX = (72, 96)  # a photo's thumbnail in the strip of the subject's photos
SIDE_WRAP = 410


def rgba_float(image: np.ndarray, box: tuple[int, int] = PHOTO_BOX) -> np.ndarray:
    """[H, W, 3] uint8 -> [h, w, 4] float32 in [0, 1], scaled down to fit ``box`` (texture data)."""
    h, w = image.shape[:2]
    scale = min(box[0] / w, box[1] / h, 1.0)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)) if scale < 1 else image
    out = np.ones((size[1], size[0], 4), np.float32)
    out[..., :3] = small[..., :3] / 255.0
    return out


def subject_images(subject, folder: Path) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """(photo, overlay or None, a thumbnail of each photo's fit) of a fitted workspace as texture data
    (worker threads: resizing)."""
    from persona_studio.workspace.subject import view_folder

    overlays = []
    for index, view in enumerate(subject.views):
        path = view_folder(folder, index) / "overlay.png"
        overlays.append(np.asarray(Image.open(path).convert("RGB")) if path.is_file() else view.image)
    overlay = rgba_float(overlays[0]) if (folder / "subject" / "overlay.png").is_file() else None
    return rgba_float(subject.image), overlay, [rgba_float(image, STRIP_BOX) for image in overlays]


def describe_fit(metrics: dict, notes: list[str]) -> str:
    """The fit's figures as readable lines (known metrics labelled with their units), then its notes."""
    lines = []
    names = {"keypoint_error_pct_height": ("keypoint error", "{:.2f} % of height"),
             "keypoint_error_max_pct_height": ("worst keypoint", "{:.2f} % of height"),
             "keypoints_scored": ("keypoints used", "{:.0f}"),
             "silhouette_inside_mask_pct": ("body inside the mask", "{:.1f} %"),
             "mask_covered_pct": ("mask covered by the body", "{:.1f} %"),
             "person_height_px": ("person height", "{:.0f} px"),
             "fit_seconds": ("fit time", "{:.1f} s")}
    for key, value in metrics.items():
        label, fmt = names.get(key, (key.replace("_", " "), "{}"))
        lines.append(f"{label}: {fmt.format(value) if isinstance(value, (int, float)) else value}")
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


class PhotoPanel:
    """Photo tab: open a photo, sample or workspace, recent workspaces, the photo (or its fit overlay), fit
    figures and the body model."""
    def __init__(self, app):
        self.app = app
        self._texture = None
        self._image: np.ndarray | None = None  # the photo as shown
        self._overlay: np.ndarray | None = None
        self._strip_textures: list[int] = []

    def build(self) -> None:
        """Photo tab: open buttons, recent workspaces, overlay toggle, photo image, fit figures, body-model
        info."""
        with dpg.group(horizontal=True):
            dpg.add_button(label="Open photo...", tag="photo_open", callback=lambda: dpg.show_item("photo_dialog"))
            dpg.add_button(label="Sample photo", tag="photo_sample", callback=self.open_sample)
            dpg.add_button(label="Open workspace...", callback=lambda: dpg.show_item("workspace_dialog"))
        dpg.add_text("", tag="drop_note", wrap=SIDE_WRAP, color=(160, 160, 170))
        with dpg.group(horizontal=True):
            dpg.add_combo([], tag="recent_workspaces", width=300, callback=self.open_recent)
            dpg.add_text("recent")
        dpg.add_text("no workspace", tag="workspace_path", wrap=SIDE_WRAP)
        dpg.add_checkbox(label="show mask, fitted body and keypoints", tag="photo_overlay", default_value=True,
                         callback=lambda: self._show_current())
        self._registry = dpg.add_texture_registry()
        self._texture = dpg.add_raw_texture(1, 1, default_value=np.zeros((1, 1, 4), np.float32),
                                            format=dpg.mvFormat_Float_rgba, parent=self._registry)
        dpg.add_image(self._texture, tag="photo_image", width=1, height=1)
        dpg.add_text("Photos of this person (one body shape; a back or side shot makes that side right)",
                     wrap=SIDE_WRAP, color=(200, 200, 255))
        dpg.add_group(tag="photo_strip", horizontal=True)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Add photo of this person...", tag="photo_add", enabled=False,
                           callback=lambda: dpg.show_item("extra_photo_dialog"))
            dpg.add_checkbox(label="dropped photos join", tag="drop_joins", default_value=False)
        dpg.add_text("", tag="fit_figures", wrap=SIDE_WRAP)
        dpg.add_separator()
        dpg.add_text("Body model", color=(200, 200, 255))
        dpg.add_text("loading...", tag="body_info", wrap=SIDE_WRAP)
        self.refresh_recent()

    def open_sample(self) -> None:
        """Sample photo button: open the bundled sample photo."""
        self.app.open_path(ws.SAMPLE_PHOTO)

    def open_recent(self, sender, folder: str) -> None:
        """Recent-workspaces combo callback: open the chosen folder."""
        if folder:
            self.app.open_path(Path(folder))

    def refresh_recent(self) -> None:
        """List the recent workspaces that still exist."""
        recent = [f for f in self.app.settings.recent_workspaces if Path(f).is_dir()]
        dpg.configure_item("recent_workspaces", items=recent)

    def show_photo(self, image: np.ndarray, notes: list[str] | tuple = ()) -> None:
        """A photo before its fit (no overlay yet); ``image`` from :func:`rgba_float`."""
        self._image, self._overlay = image, None
        dpg.set_value("workspace_path", f"workspace (created by the fit): {self.app.workspace}")
        dpg.set_value("fit_figures", "\n".join(f"note: {n}" for n in notes) or "not fitted yet")
        self._show_strip([], [])
        self._show_current()

    def show_subject(self, subject, folder: Path,
                     images: tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]) -> None:
        """A fitted subject: the first photo's overlay (mask outline, fitted body, detected vs fitted
        points), the strip of every photo's fit, and the figures; ``images`` from :func:`subject_images`."""
        self._image, self._overlay, strip = images
        dpg.set_value("workspace_path", f"workspace: {folder}")
        figures = [describe_fit(subject.metrics, subject.notes)]
        for index, view in enumerate(subject.extras, 1):
            figures.append(f"photo {index + 1}, {view.photo_name}:\n" + describe_fit(view.metrics, view.notes))
        dpg.set_value("fit_figures", "\n\n".join(figures))
        self._show_strip([view.photo_name for view in subject.views], strip)
        self._show_current()

    def _show_strip(self, names: list[str], thumbnails: list[np.ndarray]) -> None:
        """The subject's photos side by side, each with its name and (for the extras) a Remove button."""
        dpg.delete_item("photo_strip", children_only=True)
        old, self._strip_textures = self._strip_textures, []
        for index, (name, image) in enumerate(zip(names, thumbnails)):
            h, w = image.shape[:2]
            texture = dpg.add_raw_texture(w, h, default_value=image, format=dpg.mvFormat_Float_rgba,
                                          parent=self._registry)
            self._strip_textures.append(texture)
            with dpg.group(parent="photo_strip"):
                dpg.add_image(texture, width=w, height=h, tag=f"photo_strip_{index}")
                dpg.add_text(name[:12], color=(160, 160, 170))
                if index > 0:
                    dpg.add_button(label="Remove", tag=f"photo_remove_{index}",
                                   callback=lambda s, a, u: self.app.pipeline.remove_photo(u), user_data=index)
        dpg.configure_item("photo_add", enabled=bool(names))
        self.app.post(lambda: [dpg.delete_item(t) for t in old])  # next frame: nothing draws them any more

    def _show_current(self) -> None:
        image = self._overlay if (self._overlay is not None and dpg.get_value("photo_overlay")) else self._image
        if image is None:
            return
        h, w = image.shape[:2]
        old = self._texture
        self._texture = dpg.add_raw_texture(w, h, default_value=image, format=dpg.mvFormat_Float_rgba,
                                            parent=self._registry)
        dpg.configure_item("photo_image", texture_tag=self._texture, width=w, height=h)
        self.app.post(lambda: dpg.delete_item(old))  # next frame: nothing draws it any more

