#version 330 core
// Screen-space thick line segments (skeleton bones, mesh edges) and round dots (joints: a
// segment whose two ends coincide), as instanced quads. Ends behind the near plane are clipped.

layout(location = 0) in vec3 a_start;  // world
layout(location = 1) in vec3 a_end;    // world

uniform mat3 u_R;
uniform vec3 u_t;
uniform mat4 u_projection;   // camera space -> clip, built from the pixel intrinsics
uniform vec2 u_size;         // viewport in pixels
uniform float u_width;       // pixels
uniform float u_near;

noperspective out vec2 v_local;  // quad corner in (-1..1)^2, for round dots

void main() {
    vec3 p0 = u_R * a_start + u_t;
    vec3 p1 = u_R * a_end + u_t;
    if (p0.z < u_near && p1.z < u_near) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); return; }
    if (p0.z < u_near) p0 = mix(p0, p1, (u_near - p0.z) / (p1.z - p0.z));
    if (p1.z < u_near) p1 = mix(p1, p0, (u_near - p1.z) / (p0.z - p1.z));
    vec4 c0 = u_projection * vec4(p0, 1.0);
    vec4 c1 = u_projection * vec4(p1, 1.0);
    vec2 s0 = (c0.xy / c0.w * 0.5 + 0.5) * u_size;  // pixels
    vec2 s1 = (c1.xy / c1.w * 0.5 + 0.5) * u_size;
    vec2 along = s1 - s0;
    float len = length(along);
    vec2 dir = len > 1e-4 ? along / len : vec2(1.0, 0.0);
    vec2 across = vec2(-dir.y, dir.x);
    float end = float(gl_VertexID >> 1);             // 0 at the start, 1 at the end
    float side = float(gl_VertexID & 1) * 2.0 - 1.0;  // -1 / +1
    float half_width = 0.5 * u_width;
    vec2 pixel = mix(s0, s1, end) + (end * 2.0 - 1.0) * half_width * dir + side * half_width * across;
    float z = mix(c0.z / c0.w, c1.z / c1.w, end);
    gl_Position = vec4(pixel / u_size * 2.0 - 1.0, z, 1.0);
    v_local = vec2(end * 2.0 - 1.0, side);  // the unit square for a dot (len = 0)
}
