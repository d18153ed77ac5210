#version 330 core
uniform vec4 u_color;   // premultiplied
uniform bool u_round;   // dots: keep the disc inside the quad

noperspective in vec2 v_local;
out vec4 frag_color;

void main() {
    if (u_round && dot(v_local, v_local) > 1.0) discard;
    frag_color = u_color;
}
