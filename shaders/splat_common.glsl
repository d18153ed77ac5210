#version 330 core
// Projection of one 3D Gaussian to its screen-space splat, shared by splat_points.vert and
// splat_quads.vert (the loader puts this file in front of either).
//
// EWA splatting as in gsplat: camera-space covariance, perspective Jacobian with gsplat's clamp,
// 2D covariance dilated by u_eps2d pixels^2. Image pixels (u, v) map to the framebuffer with a
// guard band of u_margin pixels on each side (so point sprites centred just outside the image
// still reach into it) and upside down (NDC y grows with v) so glReadPixels returns the top row
// first.

uniform mat3 u_R;            // world -> camera rotation (OpenCV axes)
uniform vec3 u_t;            // world -> camera translation
uniform vec4 u_intrinsics;   // fx, fy, cx, cy in image pixels
uniform vec2 u_size;         // image width, height in pixels
uniform float u_margin;      // guard band in pixels around the image in the framebuffer
uniform vec2 u_clip;         // near, far (camera z)
uniform float u_eps2d;       // 2D dilation added to the covariance diagonal
uniform float u_max_sigma;   // footprint half-extent cap in standard deviations
uniform int u_mode;          // 0 colour, 1 depth, 2 normals, 3 alpha

flat out vec2 v_mean;        // framebuffer pixel coordinates of the centre
flat out vec3 v_conic;       // inverse 2D covariance (a, b, c) of [[a, b], [b, c]]
flat out vec4 v_color;       // rgb + opacity
flat out float v_cutoff;     // largest Mahalanobis^2 / 2 drawn

const float MIN_ALPHA = 1.0 / 255.0;

struct Splat {
    vec2 mean;       // image pixels
    vec3 conic;
    vec2 axis1;      // half-axes of the drawn ellipse, pixels
    vec2 axis2;
    vec4 color;
    float cutoff;
};

mat3 quat_to_rotation(vec4 q) {  // q = (w, x, y, z), unit
    float w = q.x, x = q.y, y = q.z, z = q.w;
    return mat3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),   // column 0
                2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),   // column 1
                2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));  // column 2
}

// false when the Gaussian is not drawn: outside [near, far], too faint, degenerate, off-image
bool project_splat(vec4 mean_opacity, vec3 scale, vec4 quat, vec3 color_source, out Splat s) {
    s = Splat(vec2(0.0), vec3(0.0), vec2(0.0), vec2(0.0), vec4(0.0), 0.0);
    float opacity = mean_opacity.w;
    vec3 p = u_R * mean_opacity.xyz + u_t;  // camera space
    if (p.z <= u_clip.x || p.z >= u_clip.y || opacity < MIN_ALPHA) return false;

    // camera-space covariance (J M)(J M)^T with M = R_c R_q S
    mat3 M = u_R * quat_to_rotation(quat) * mat3(scale.x, 0.0, 0.0, 0.0, scale.y, 0.0, 0.0, 0.0, scale.z);

    // perspective Jacobian, tangent clamped to the view frustum widened by 30% (gsplat)
    vec2 focal = u_intrinsics.xy;
    vec2 centre = u_intrinsics.zw;
    vec2 tan_fov = 0.5 * u_size / focal;
    vec2 lim_pos = (u_size - centre) / focal + 0.3 * tan_fov;
    vec2 lim_neg = centre / focal + 0.3 * tan_fov;
    vec2 txy = p.z * clamp(p.xy / p.z, -lim_neg, lim_pos);
    float rz = 1.0 / p.z;
    vec3 j0 = vec3(focal.x * rz, 0.0, -focal.x * txy.x * rz * rz);  // rows of J
    vec3 j1 = vec3(0.0, focal.y * rz, -focal.y * txy.y * rz * rz);
    vec3 m0 = j0 * M;  // rows of J M
    vec3 m1 = j1 * M;
    float a = dot(m0, m0) + u_eps2d;
    float b = dot(m0, m1);
    float c = dot(m1, m1) + u_eps2d;
    float det = a * c - b * b;
    if (det <= 0.0) return false;

    // alpha = opacity exp(-maha^2 / 2) falls below 1/255 beyond maha^2 / 2 = log(255 opacity);
    // draw up to there, and no farther than u_max_sigma standard deviations
    float cutoff = min(0.5 * u_max_sigma * u_max_sigma, log(255.0 * opacity));
    if (cutoff <= 0.0) return false;
    float k = sqrt(2.0 * cutoff);

    // principal axes of the 2D covariance
    float mid = 0.5 * (a + c);
    float rad = sqrt(max(0.25 * (a - c) * (a - c) + b * b, 0.0));
    float l1 = mid + rad;
    float l2 = max(mid - rad, 1e-6);
    vec2 e1 = abs(b) > 1e-9 ? normalize(vec2(b, l1 - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
    s.axis1 = k * sqrt(l1) * e1;
    s.axis2 = k * sqrt(l2) * vec2(-e1.y, e1.x);
    s.mean = focal * p.xy * rz + centre;

    vec2 box = abs(s.axis1) + abs(s.axis2);  // half-size of the ellipse's bounding box
    if (any(lessThanEqual(s.mean + box, vec2(0.0))) || any(greaterThanEqual(s.mean - box, u_size))) return false;

    vec3 rgb;
    if (u_mode == 1) {
        rgb = vec3(p.z);                          // depth, normalised in the resolve pass
    } else if (u_mode == 2) {
        vec3 n = u_R * color_source;              // camera-space normal (x right, y down, z away)
        rgb = 0.5 * vec3(n.x, -n.y, -n.z) + 0.5;  // normal-map colours: facing the viewer = blue
    } else if (u_mode == 3) {
        rgb = vec3(1.0);                          // coverage
    } else {
        rgb = color_source;
    }
    s.conic = vec3(c, -b, a) / det;
    s.color = vec4(rgb, opacity);
    s.cutoff = cutoff;
    return true;
}

vec4 framebuffer_position(vec2 pixel) {
    return vec4(2.0 * (pixel + u_margin) / (u_size + 2.0 * u_margin) - 1.0, 0.0, 1.0);
}

void emit_splat(Splat s) {
    v_mean = s.mean + u_margin;
    v_conic = s.conic;
    v_color = s.color;
    v_cutoff = s.cutoff;
}

void cull() {
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);  // outside the clip volume: dropped
    gl_PointSize = 1.0;
    emit_splat(Splat(vec2(0.0), vec3(0.0), vec2(0.0), vec2(0.0), vec4(0.0), 0.0));
}
