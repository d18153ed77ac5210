#version 330 core
// Gaussian falloff with gsplat's alpha rule, written premultiplied for front-to-back blending
// with glBlendFunc(GL_ONE_MINUS_DST_ALPHA, GL_ONE) (the "under" operator).

flat in vec2 v_mean;
flat in vec3 v_conic;
flat in vec4 v_color;
flat in float v_cutoff;

uniform float u_max_alpha;

out vec4 frag_color;

const float MIN_ALPHA = 1.0 / 255.0;

void main() {
    vec2 d = v_mean - gl_FragCoord.xy;  // gl_FragCoord is the pixel centre (j + 0.5, i + 0.5)
    float sigma = 0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) + v_conic.y * d.x * d.y;
    if (sigma > v_cutoff) discard;
    float alpha = min(u_max_alpha, v_color.a * exp(-sigma));
    if (alpha < MIN_ALPHA) discard;
    frag_color = vec4(v_color.rgb * alpha, alpha);
}
