// (splat_common.glsl goes first.) One instanced quad per Gaussian, spanning the ellipse's axes:
// used when a sprite could exceed the largest point size. Instances come in front-to-back order;
// a_index is the sorted Gaussian index and the Gaussian is read from texture buffers.

layout(location = 0) in uint a_index;

uniform samplerBuffer u_mean_opacity;
uniform samplerBuffer u_scale;
uniform samplerBuffer u_quat;
uniform samplerBuffer u_color;

void main() {
    int i = int(a_index);
    Splat s;
    if (!project_splat(texelFetch(u_mean_opacity, i), texelFetch(u_scale, i).xyz, texelFetch(u_quat, i),
                       texelFetch(u_color, i).rgb, s)) { cull(); return; }
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;  // strip order
    gl_Position = framebuffer_position(s.mean + corner.x * s.axis1 + corner.y * s.axis2);
    emit_splat(s);
}
