#version 330 core
// Mesh triangles into the depth buffer only, so its wireframe hides its own back edges.
layout(location = 0) in vec3 a_position;  // world

uniform mat3 u_R;
uniform vec3 u_t;
uniform mat4 u_projection;

void main() {
    gl_Position = u_projection * vec4(u_R * a_position + u_t, 1.0);
}
