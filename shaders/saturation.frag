#version 330 core
// Front-to-back early termination: where the accumulated opacity has reached u_opaque_alpha
// (transmittance ~0), keep this full-screen triangle's depth (0.5, the depth every splat is drawn
// at) so that the depth test (GL_LESS) rejects all later splat fragments there before shading.

uniform sampler2D u_accumulated;
uniform float u_opaque_alpha;

void main() {
    if (texelFetch(u_accumulated, ivec2(gl_FragCoord.xy), 0).a < u_opaque_alpha) discard;
}
