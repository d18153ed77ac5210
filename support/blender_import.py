"""Run inside Blender (``blender -b --factory-startup --python support/blender_import.py -- GLB OUT.npz
ANIMATION:KEY ...``): import the GLB with Blender's own glTF importer and write what Blender made of it
to OUT.npz: the armature's bone names, the point mesh's vertex count and vertex groups, the shape keys,
each animation's key count, and the evaluated (skinned, shape-keyed) vertex positions at the asked keys,
back in glTF's axes (Y up). Used by tests/test_gltf.py."""

import json
import sys

import bpy
import numpy

if not hasattr(numpy, "bool"):
    # Debian's Blender 3.4 importer still says np.bool, which numpy >= 1.24 (Debian's own) removed.
    numpy.bool = bool


def main() -> None:
    glb, out, *asked = sys.argv[sys.argv.index("--") + 1:]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    document = read_document(glb)
    fps = document["animations"][0].get("extras", {}).get("fps", 24)
    bpy.context.scene.render.fps = int(round(fps))  # keys land on whole frames
    bpy.ops.import_scene.gltf(filepath=glb)
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    mesh = next(o for o in bpy.data.objects if o.type == "MESH")
    keys = mesh.data.shape_keys
    found = {
        "bones": [b.name for b in armature.data.bones],
        "vertices": len(mesh.data.vertices),
        "groups": [g.name for g in mesh.vertex_groups],
        "shape_keys": [k.name for k in keys.key_blocks] if keys else [],
        "actions": {},
    }
    positions = []
    for name in (a["name"] for a in document["animations"]):
        skeleton_action = next(a for a in bpy.data.actions if a.name.startswith(name + "_") and a.id_root == "OBJECT"
                               and a.fcurves and a.fcurves[0].data_path.startswith("pose.bones"))
        key_action = next((a for a in bpy.data.actions if a.name.startswith(name + "_") and a.id_root == "KEY"), None)
        found["actions"][name] = len(skeleton_action.fcurves[0].keyframe_points)
        for ask in asked:
            animation, key = ask.rsplit(":", 1)
            if animation != name:
                continue
            set_action(armature, skeleton_action)
            if keys is not None and key_action is not None:
                set_action(keys, key_action)
            frame = skeleton_action.fcurves[0].keyframe_points[int(key)].co[0]
            bpy.context.scene.frame_set(int(round(frame)))
            evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
            data = evaluated.to_mesh()
            co = numpy.empty(len(data.vertices) * 3, numpy.float64)
            data.vertices.foreach_get("co", co)
            world = numpy.array(mesh.matrix_world)
            points = co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
            evaluated.to_mesh_clear()
            positions.append(numpy.stack([points[:, 0], points[:, 2], -points[:, 1]], 1))  # Z up -> glTF's Y up
    numpy.savez(out, found=json.dumps(found), positions=numpy.array(positions))


def set_action(owner, action) -> None:
    """Play ``action`` on ``owner`` alone (the importer parks the other animations on muted NLA tracks)."""
    data = owner.animation_data or owner.animation_data_create()
    data.action = action
    for track in data.nla_tracks:
        track.mute = True


def read_document(glb: str) -> dict:
    """The JSON chunk of a GLB file."""
    with open(glb, "rb") as f:
        raw = f.read()
    length = int.from_bytes(raw[12:16], "little")
    return json.loads(raw[20:20 + length])


main()
