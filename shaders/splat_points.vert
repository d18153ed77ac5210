// (splat_common.glsl goes first.) One point sprite per Gaussian, drawn with glDrawElements in
// front-to-back order: the element indices are the sorted Gaussian indices. A sprite is the
// axis-aligned square around the ellipse; the fragment shader evaluates the exact Gaussian.

layout(location = 0) in vec4 a_mean_opacity;
layout(location = 1) in vec4 a_scale;   // xyz
layout(location = 2) in vec4 a_quat;    // wxyz
layout(location = 3) in vec4 a_color;   // rgb: colours, normals or part colours by mode

uniform float u_max_point_size;

void main() {
    Splat s;
    if (!project_splat(a_mean_opacity, a_scale.xyz, a_quat, a_color.rgb, s)) { cull(); return; }
    vec2 box = abs(s.axis1) + abs(s.axis2);
    gl_Position = framebuffer_position(s.mean);
    gl_PointSize = min(2.0 * max(box.x, box.y), u_max_point_size);
    emit_splat(s);
}
