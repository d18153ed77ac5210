#version 330 core
// One instanced quad per Gaussian, in back-to-front order (a_index is the sorted Gaussian index).
// EWA splatting as in gsplat: camera-space covariance, perspective Jacobian with gsplat's clamp,
// 2D covariance dilated by u_eps2d pixels^2. Positions are in pixels; the GL framebuffer is used
// upside down (NDC y = 2 v / H - 1) so that glReadPixels returns the top image row first.

layout(location = 0) in uint a_index;

uniform samplerBuffer u_mean_opacity;  // xyz world position, opacity
uniform samplerBuffer u_scale;         // xyz standard deviations
uniform samplerBuffer u_quat;          // wxyz unit quaternion
uniform samplerBuffer u_color;         // rgb (colours, normals or part colours by mode)

uniform mat3 u_R;            // world -> camera rotation (OpenCV axes)
uniform vec3 u_t;            // world -> camera translation
uniform vec4 u_intrinsics;   // fx, fy, cx, cy in pixels
uniform vec2 u_size;         // width, height in pixels
uniform vec2 u_clip;         // near, far (camera z)
uniform float u_eps2d;       // 2D dilation added to the covariance diagonal
uniform float u_max_sigma;   // quad half-extent cap in standard deviations
uniform int u_mode;          // 0 colour, 1 depth, 2 normals, 3 alpha

flat out vec2 v_mean;        // pixel coordinates of the centre
flat out vec3 v_conic;       // inverse 2D covariance (a, b, c) of [[a, b], [b, c]]
flat out vec4 v_color;       // rgb + opacity
flat out float v_cutoff;     // largest 0.5 * Mahalanobis^2 drawn

const float MIN_ALPHA = 1.0 / 255.0;

mat3 quat_to_rotation(vec4 q) {
    float w = q.x, x = q.y, y = q.z, z = q.w;
    // columns of the rotation matrix (GLSL is column-major)
    return mat3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
                2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),
                2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));
}

void cull() {
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);  // outside the clip volume: the quad is dropped
    v_mean = vec2(0.0); v_conic = vec3(0.0); v_color = vec4(0.0); v_cutoff = 0.0;
}

void main() {
    int i = int(a_index);
    vec4 mean_opacity = texelFetch(u_mean_opacity, i);
    float opacity = mean_opacity.w;
    vec3 p = u_R * mean_opacity.xyz + u_t;  // camera space
    if (p.z <= u_clip.x || p.z >= u_clip.y || opacity < MIN_ALPHA) { cull(); return; }

    // camera-space 3D covariance  R_c M M^T R_c^T  with  M = R_q S
    vec3 s = texelFetch(u_scale, i).xyz;
    mat3 M = u_R * quat_to_rotation(texelFetch(u_quat, i)) * mat3(s.x, 0.0, 0.0, 0.0, s.y, 0.0, 0.0, 0.0, s.z);

    // perspective Jacobian, with the tangent clamped to the view frustum widened by 30% (gsplat)
    float fx = u_intrinsics.x, fy = u_intrinsics.y, cx = u_intrinsics.z, cy = u_intrinsics.w;
    vec2 tan_fov = 0.5 * u_size / vec2(fx, fy);
    vec2 lim_pos = (u_size - vec2(cx, cy)) / vec2(fx, fy) + 0.3 * tan_fov;
    vec2 lim_neg = vec2(cx, cy) / vec2(fx, fy) + 0.3 * tan_fov;
    vec2 txy = p.z * clamp(p.xy / p.z, -lim_neg, lim_pos);
    float rz = 1.0 / p.z;
    // rows of J as vectors: J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]
    vec3 j0 = vec3(fx * rz, 0.0, -fx * txy.x * rz * rz);
    vec3 j1 = vec3(0.0, fy * rz, -fy * txy.y * rz * rz);
    vec3 m0 = j0 * M;  // row 0 of J M
    vec3 m1 = j1 * M;
    float a = dot(m0, m0) + u_eps2d;
    float b = dot(m0, m1);
    float c = dot(m1, m1) + u_eps2d;
    float det = a * c - b * b;
    if (det <= 0.0) { cull(); return; }

    vec2 mean = vec2(fx * p.x * rz + cx, fy * p.y * rz + cy);

    // half-extent in standard deviations: where alpha = opacity exp(-maha^2 / 2) drops below 1/255,
    // at most u_max_sigma; cutoff is that bound on maha^2 / 2
    float cutoff = min(0.5 * u_max_sigma * u_max_sigma, log(255.0 * opacity));
    if (cutoff <= 0.0) { cull(); return; }
    float k = sqrt(2.0 * cutoff);

    // principal axes of the 2D covariance
    float mid = 0.5 * (a + c);
    float rad = sqrt(max(0.25 * (a - c) * (a - c) + b * b, 0.0));
    float l1 = mid + rad;
    float l2 = max(mid - rad, 1e-6);
    vec2 e1 = abs(b) > 1e-9 ? normalize(vec2(b, l1 - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
    vec2 e2 = vec2(-e1.y, e1.x);
    vec2 half_axis1 = k * sqrt(l1) * e1;
    vec2 half_axis2 = k * sqrt(l2) * e2;

    // skip splats entirely outside the image (bounding box of the ellipse)
    vec2 box = abs(half_axis1) + abs(half_axis2);
    if (any(lessThanEqual(mean + box, vec2(0.0))) || any(greaterThanEqual(mean - box, u_size))) {
        cull(); return;
    }

    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;  // strip order
    vec2 pixel = mean + corner.x * half_axis1 + corner.y * half_axis2;
    gl_Position = vec4(2.0 * pixel / u_size - 1.0, 0.0, 1.0);

    vec3 rgb;
    if (u_mode == 1) {
        rgb = vec3(p.z);                          // depth, normalised in the resolve pass
    } else if (u_mode == 2) {
        vec3 n = u_R * texelFetch(u_color, i).xyz;   // camera-space normal (x right, y down, z in)
        rgb = 0.5 * vec3(n.x, -n.y, -n.z) + 0.5;  // normal-map colours: facing the viewer = blue
    } else if (u_mode == 3) {
        rgb = vec3(1.0);                          // coverage
    } else {
        rgb = texelFetch(u_color, i).rgb;
    }
    v_mean = mean;
    v_conic = vec3(c, -b, a) / det;
    v_color = vec4(rgb, opacity);
    v_cutoff = cutoff;
}
