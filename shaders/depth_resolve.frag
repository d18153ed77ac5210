#version 330 core
// Depth mode: the splat pass accumulated (sum w z, ..., sum w) with w the blending weights;
// expected depth = r / a, mapped to a colour (near = warm, far = cool) and composited over the
// background like the colour modes.

uniform sampler2D u_accumulated;
uniform vec2 u_depth_range;   // depths mapped to the two ends of the colour map
uniform vec4 u_background;    // premultiplied

out vec4 frag_color;

vec3 depth_colour(float t) {  // t = 0 near .. 1 far; five hand-picked stops
    const vec3 c0 = vec3(1.00, 0.95, 0.55);
    const vec3 c1 = vec3(0.98, 0.62, 0.20);
    const vec3 c2 = vec3(0.85, 0.25, 0.35);
    const vec3 c3 = vec3(0.45, 0.15, 0.55);
    const vec3 c4 = vec3(0.10, 0.10, 0.35);
    float s = clamp(t, 0.0, 1.0) * 4.0;
    if (s < 1.0) return mix(c0, c1, s);
    if (s < 2.0) return mix(c1, c2, s - 1.0);
    if (s < 3.0) return mix(c2, c3, s - 2.0);
    return mix(c3, c4, s - 3.0);
}

void main() {
    vec4 acc = texelFetch(u_accumulated, ivec2(gl_FragCoord.xy), 0);
    float alpha = acc.a;
    vec3 rgb = vec3(0.0);
    if (alpha > 0.0) {
        float depth = acc.r / alpha;
        float span = max(u_depth_range.y - u_depth_range.x, 1e-6);
        rgb = depth_colour((depth - u_depth_range.x) / span) * alpha;
    }
    frag_color = vec4(rgb, alpha) + (1.0 - alpha) * u_background;
}
