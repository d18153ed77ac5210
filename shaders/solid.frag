#version 330 core
// One premultiplied colour (the background composited under the splats).
uniform vec4 u_color;
out vec4 frag_color;

void main() {
    frag_color = u_color;
}
