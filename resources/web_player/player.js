// PERSONA Studio web player: plays the rigged avatar GLB (KHR_gaussian_splatting points, a skin, morph
// targets, animations) with WebGL2 and no other code.
//
// Per frame: the animation sampled at the clock's time gives each node's rotation/translation and the
// morph weights; a transform-feedback pass on the GPU morphs and skins every Gaussian (the glTF rules:
// targets first, then the four weighted joint matrices); the posed centres come back for a depth sort
// (back to front); a second pass draws each Gaussian as the ellipse of its projected 2D covariance with
// gsplat's falloff and alpha rule, as the program's own viewer does (shaders/splat_common.glsl).
//
// URL parameters (all optional): motion=NAME, frame=K (start there, paused), paused=1, eye=x,y,z,
// target=x,y,z, fov=DEGREES (vertical), bg=RRGGBB, ui=0 (no control bar), src=FILE.glb.
"use strict";

const EXTENSION = "KHR_gaussian_splatting";
const SH_C0 = 0.28209479177387814;
const EPS_2D = 0.3;          // px^2 added to the 2D covariance (the program's rasteriser)
const MAX_SIGMA = 3.0;       // footprint half-extent cap, standard deviations
const MAX_ALPHA = 0.999;     // cap on one Gaussian's alpha (gsplat)
const TEXTURE_WIDTH = 4096;  // morph targets and joint matrices live in float textures this wide
const float = (x) => x.toFixed(6);  // a GLSL float literal (3 would be an int)

const params = new URLSearchParams(location.search);
const canvas = document.getElementById("view");
const message = document.getElementById("message");

function fail(text) {
  message.textContent = text;
  message.style.display = "block";
  document.title = "error";
  throw new Error(text);
}

// -- glTF ---------------------------------------------------------------------------------------

async function loadGlb(url) {
  if (location.protocol === "file:") {
    fail("Browsers do not let a page opened as a file read its GLB. In this folder run " +
         "`python -m http.server 8000`, then open http://localhost:8000/");
  }
  const response = await fetch(url);
  if (!response.ok) fail(`could not read ${url}: HTTP ${response.status}`);
  const buffer = await response.arrayBuffer();
  const view = new DataView(buffer);
  if (buffer.byteLength < 20 || view.getUint32(0, true) !== 0x46546c67 || view.getUint32(4, true) !== 2) {
    fail(`${url} is not a glTF 2.0 binary (GLB)`);
  }
  const jsonLength = view.getUint32(12, true);
  const document_ = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 20, jsonLength)));
  const binStart = 20 + jsonLength;
  const binLength = view.getUint32(binStart, true);
  return { doc: document_, bin: buffer.slice(binStart + 8, binStart + 8 + binLength) };
}

const COMPONENTS = { SCALAR: 1, VEC2: 2, VEC3: 3, VEC4: 4, MAT4: 16 };
const ARRAYS = { 5126: Float32Array, 5121: Uint8Array, 5123: Uint16Array, 5125: Uint32Array };

function accessor(gltf, index) {
  // the accessor's values, tightly packed (a strided bufferView is de-interleaved)
  const a = gltf.doc.accessors[index];
  const v = gltf.doc.bufferViews[a.bufferView];
  const width = COMPONENTS[a.type];
  const Type = ARRAYS[a.componentType];
  const offset = (v.byteOffset || 0) + (a.byteOffset || 0);
  const stride = v.byteStride || width * Type.BYTES_PER_ELEMENT;
  if (stride === width * Type.BYTES_PER_ELEMENT && offset % Type.BYTES_PER_ELEMENT === 0) {
    return new Type(gltf.bin, offset, a.count * width);
  }
  const out = new Type(a.count * width);
  const bytes = new Uint8Array(gltf.bin);
  for (let i = 0; i < a.count; i++) {
    const row = new Type(bytes.slice(offset + i * stride, offset + i * stride + width * Type.BYTES_PER_ELEMENT).buffer);
    out.set(row, i * width);
  }
  return out;
}

// -- small maths (column-major 4x4 as WebGL takes them) -------------------------------------------

function compose(t, q, s) {  // T * R * S
  const [x, y, z, w] = q;
  return new Float32Array([
    (1 - 2 * (y * y + z * z)) * s[0], (2 * (x * y + w * z)) * s[0], (2 * (x * z - w * y)) * s[0], 0,
    (2 * (x * y - w * z)) * s[1], (1 - 2 * (x * x + z * z)) * s[1], (2 * (y * z + w * x)) * s[1], 0,
    (2 * (x * z + w * y)) * s[2], (2 * (y * z - w * x)) * s[2], (1 - 2 * (x * x + y * y)) * s[2], 0,
    t[0], t[1], t[2], 1]);
}

function multiply(a, b) {
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += a[k * 4 + r] * b[c * 4 + k];
      out[c * 4 + r] = sum;
    }
  }
  return out;
}

function slerp(a, b, f) {
  let dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
  const sign = dot < 0 ? -1 : 1;
  dot *= sign;
  if (dot > 0.9995) {
    const q = a.map((v, i) => v + f * (sign * b[i] - v));
    const n = Math.hypot(...q);
    return q.map((v) => v / n);
  }
  const angle = Math.acos(dot);
  const wa = Math.sin((1 - f) * angle) / Math.sin(angle);
  const wb = sign * Math.sin(f * angle) / Math.sin(angle);
  return a.map((v, i) => wa * v + wb * b[i]);
}

// -- the avatar: static data, animations, posing --------------------------------------------------

class Avatar {
  constructor(gltf) {
    const mesh = gltf.doc.meshes[0];
    const primitive = mesh.primitives[0];
    const attributes = primitive.attributes;
    if (primitive.mode !== 0 || !primitive.extensions || !primitive.extensions[EXTENSION]) {
      fail("this GLB holds no Gaussian splats (a POINTS primitive with KHR_gaussian_splatting)");
    }
    this.gltf = gltf;
    this.position = accessor(gltf, attributes.POSITION);
    this.count = this.position.length / 3;
    this.joints = accessor(gltf, attributes.JOINTS_0);
    this.weights = accessor(gltf, attributes.WEIGHTS_0);
    this.scale = accessor(gltf, attributes[`${EXTENSION}:SCALE`]);
    this.opacity = accessor(gltf, attributes[`${EXTENSION}:OPACITY`]);
    const sh = accessor(gltf, attributes[`${EXTENSION}:SH_DEGREE_0_COEF_0`]);
    this.color = sh.map((v) => Math.min(1, Math.max(0, v * SH_C0 + 0.5)));
    this.targets = (primitive.targets || []).map((t) => accessor(gltf, t.POSITION));
    this.defaultWeights = mesh.weights || this.targets.map(() => 0);
    this.nodes = gltf.doc.nodes;
    this.parent = new Map();
    this.nodes.forEach((node, i) => (node.children || []).forEach((c) => this.parent.set(c, i)));
    this.meshNode = this.nodes.findIndex((n) => n.mesh === 0);
    const skin = gltf.doc.skins[0];
    this.skinJoints = skin.joints;
    this.inverseBind = accessor(gltf, skin.inverseBindMatrices);
    this.animations = (gltf.doc.animations || []).map((a) => this.readAnimation(a));
    const p = this.position;
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < p.length; i += 3) {
      for (let d = 0; d < 3; d++) { lo[d] = Math.min(lo[d], p[i + d]); hi[d] = Math.max(hi[d], p[i + d]); }
    }
    this.centre = lo.map((v, d) => 0.5 * (v + hi[d]));
    this.height = hi[1] - lo[1];
  }

  readAnimation(animation) {
    const channels = animation.channels.map((c) => {
      const sampler = animation.samplers[c.sampler];
      return { node: c.target.node, path: c.target.path, times: accessor(this.gltf, sampler.input),
               values: accessor(this.gltf, sampler.output) };
    });
    const times = channels[0].times;
    return { name: animation.name || "animation", channels, keys: times.length,
             duration: times[times.length - 1], fps: (animation.extras && animation.extras.fps) ||
             (times.length > 1 ? (times.length - 1) / times[times.length - 1] : 30) };
  }

  // node locals and morph weights of animation `a` at time `t` (seconds; clamped to the keys)
  sample(a, t) {
    const locals = this.nodes.map((n) => ({ translation: n.translation || [0, 0, 0], rotation: n.rotation || [0, 0, 0, 1],
                                            scale: n.scale || [1, 1, 1] }));
    let weights = this.defaultWeights.slice();
    for (const ch of this.animations[a].channels) {
      const times = ch.times;
      let i = 0;
      while (i + 1 < times.length && times[i + 1] <= t) i++;
      const j = Math.min(i + 1, times.length - 1);
      const f = j === i ? 0 : Math.min(1, Math.max(0, (t - times[i]) / (times[j] - times[i])));
      const width = ch.path === "weights" ? weights.length : ch.path === "rotation" ? 4 : 3;
      const at = (k) => Array.from(ch.values.subarray(k * width, (k + 1) * width));
      if (ch.path === "rotation") locals[ch.node].rotation = slerp(at(i), at(j), f);
      else {
        const value = at(i).map((v, d) => v + f * (at(j)[d] - v));
        if (ch.path === "weights") weights = value; else locals[ch.node][ch.path] = value;
      }
    }
    return { locals, weights };
  }

  // [55 * 16] joint matrices (global * inverse bind) for sampled locals
  jointMatrices(locals) {
    const world = new Map();
    const globalOf = (i) => {
      if (!world.has(i)) {
        const local = compose(locals[i].translation, locals[i].rotation, locals[i].scale);
        world.set(i, this.parent.has(i) ? multiply(globalOf(this.parent.get(i)), local) : local);
      }
      return world.get(i);
    };
    const out = new Float32Array(this.skinJoints.length * 16);
    this.skinJoints.forEach((node, j) => out.set(multiply(globalOf(node), this.inverseBind.subarray(j * 16, j * 16 + 16)), j * 16));
    return out;
  }
}

// -- WebGL2 -------------------------------------------------------------------------------------

const SKIN_VERTEX = `#version 300 es
precision highp float;
precision highp int;
layout(location = 0) in vec3 a_position;
layout(location = 1) in uvec4 a_joints;
layout(location = 2) in vec4 a_weights;
uniform highp sampler2D u_joint_matrices;  // 4 texels (columns) per joint
uniform highp sampler2D u_targets;         // target k of Gaussian i at texel k * count + i
uniform highp sampler2D u_morph;           // weight k at texel k
uniform int u_count;
uniform int u_target_count;
out vec3 v_posed;
ivec2 texel(int index) { return ivec2(index % ${TEXTURE_WIDTH}, index / ${TEXTURE_WIDTH}); }
mat4 joint(uint j) {
  int base = int(j) * 4;
  return mat4(texelFetch(u_joint_matrices, texel(base), 0), texelFetch(u_joint_matrices, texel(base + 1), 0),
              texelFetch(u_joint_matrices, texel(base + 2), 0), texelFetch(u_joint_matrices, texel(base + 3), 0));
}
void main() {
  vec3 p = a_position;
  for (int k = 0; k < u_target_count; k++) {
    float w = texelFetch(u_morph, ivec2(k, 0), 0).r;
    if (w != 0.0) p += w * texelFetch(u_targets, texel(k * u_count + gl_VertexID), 0).xyz;
  }
  mat4 m = a_weights.x * joint(a_joints.x) + a_weights.y * joint(a_joints.y)
         + a_weights.z * joint(a_joints.z) + a_weights.w * joint(a_joints.w);
  v_posed = (m * vec4(p, 1.0)).xyz;
  gl_Position = vec4(0.0);
}`;

const NOTHING_FRAGMENT = `#version 300 es
precision mediump float;
out vec4 color;
void main() { color = vec4(0.0); }`;

// One instanced quad per Gaussian (sorted back to front), spanning its projected ellipse.
const SPLAT_VERTEX = `#version 300 es
precision highp float;
layout(location = 0) in vec4 a_mean_scale;    // posed centre, isotropic standard deviation
layout(location = 1) in vec4 a_color_opacity;
uniform mat3 u_R;          // world -> camera rotation (x right, y down, z forward)
uniform vec3 u_t;
uniform vec4 u_intrinsics; // fx, fy, cx, cy (image pixels)
uniform vec2 u_size;       // image width, height
flat out vec2 v_mean;
flat out vec3 v_conic;
flat out vec4 v_color;
flat out float v_cutoff;
void main() {
  vec3 p = u_R * a_mean_scale.xyz + u_t;
  float opacity = a_color_opacity.a;
  vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;
  if (p.z <= 0.01 || opacity < 1.0 / 255.0) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); return; }
  vec2 focal = u_intrinsics.xy, centre = u_intrinsics.zw;
  vec2 tan_fov = 0.5 * u_size / focal;
  vec2 lim_pos = (u_size - centre) / focal + 0.3 * tan_fov;
  vec2 lim_neg = centre / focal + 0.3 * tan_fov;
  vec2 txy = p.z * clamp(p.xy / p.z, -lim_neg, lim_pos);
  float rz = 1.0 / p.z;
  vec3 j0 = vec3(focal.x * rz, 0.0, -focal.x * txy.x * rz * rz);
  vec3 j1 = vec3(0.0, focal.y * rz, -focal.y * txy.y * rz * rz);
  float s2 = a_mean_scale.w * a_mean_scale.w;  // isotropic: the camera rotation leaves s^2 I unchanged
  float a = s2 * dot(j0, j0) + ${float(EPS_2D)};
  float b = s2 * dot(j0, j1);
  float c = s2 * dot(j1, j1) + ${float(EPS_2D)};
  float det = a * c - b * b;
  float cutoff = min(0.5 * ${float(MAX_SIGMA)} * ${float(MAX_SIGMA)}, log(255.0 * opacity));
  float k = sqrt(2.0 * cutoff);
  float mid = 0.5 * (a + c);
  float rad = sqrt(max(0.25 * (a - c) * (a - c) + b * b, 0.0));
  float l1 = mid + rad, l2 = max(mid - rad, 1e-6);
  vec2 e1 = abs(b) > 1e-9 ? normalize(vec2(b, l1 - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
  vec2 axis1 = k * sqrt(l1) * e1, axis2 = k * sqrt(l2) * vec2(-e1.y, e1.x);
  vec2 mean = focal * p.xy * rz + centre;
  vec2 pixel = mean + corner.x * axis1 + corner.y * axis2;
  gl_Position = vec4(2.0 * pixel.x / u_size.x - 1.0, 1.0 - 2.0 * pixel.y / u_size.y, 0.0, 1.0);
  v_mean = mean;
  v_conic = vec3(c, -b, a) / det;
  v_color = a_color_opacity;
  v_cutoff = cutoff;
}`;

const SPLAT_FRAGMENT = `#version 300 es
precision highp float;
flat in vec2 v_mean;
flat in vec3 v_conic;
flat in vec4 v_color;
flat in float v_cutoff;
uniform vec2 u_size;
out vec4 color;
void main() {
  vec2 pixel = vec2(gl_FragCoord.x, u_size.y - gl_FragCoord.y);  // image pixels, v down
  vec2 d = v_mean - pixel;
  float sigma = 0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) + v_conic.y * d.x * d.y;
  if (sigma > v_cutoff) discard;
  float alpha = min(${float(MAX_ALPHA)}, v_color.a * exp(-sigma));
  if (alpha < 1.0 / 255.0) discard;
  color = vec4(v_color.rgb * alpha, alpha);  // premultiplied, blended back to front
}`;

function program(gl, vertex, fragment, feedback) {
  const compile = (type, source) => {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) fail(`shader: ${gl.getShaderInfoLog(shader)}`);
    return shader;
  };
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl.VERTEX_SHADER, vertex));
  gl.attachShader(p, compile(gl.FRAGMENT_SHADER, fragment));
  if (feedback) gl.transformFeedbackVaryings(p, feedback, gl.SEPARATE_ATTRIBS);
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) fail(`program: ${gl.getProgramInfoLog(p)}`);
  return p;
}

const FORMATS = { 1: ["R32F", "RED"], 3: ["RGB32F", "RGB"], 4: ["RGBA32F", "RGBA"] };

// a float texture on `unit` holding `data` (`channels` per texel, at most `width` texels a row)
function floatTexture(gl, unit, data, channels, width) {
  const texels = data.length / channels;
  const w = Math.min(width, Math.max(1, texels));
  const h = Math.max(1, Math.ceil(texels / w));
  const padded = new Float32Array(w * h * channels);
  padded.set(data);
  const texture = gl.createTexture();
  gl.activeTexture(gl.TEXTURE0 + unit);
  gl.bindTexture(gl.TEXTURE_2D, texture);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl[FORMATS[channels][0]], w, h, 0, gl[FORMATS[channels][1]], gl.FLOAT, padded);
  for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
  return { texture, unit, width: w, height: h, channels, padded };
}

// new contents for a texture made by floatTexture (same size)
function updateTexture(gl, t, data) {
  t.padded.set(data);
  gl.activeTexture(gl.TEXTURE0 + t.unit);
  gl.bindTexture(gl.TEXTURE_2D, t.texture);
  gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, t.width, t.height, gl[FORMATS[t.channels][1]], gl.FLOAT, t.padded);
}

class Renderer {
  constructor(gl, avatar) {
    this.gl = gl;
    this.avatar = avatar;
    const n = avatar.count;
    this.skin = program(gl, SKIN_VERTEX, NOTHING_FRAGMENT, ["v_posed"]);
    this.splat = program(gl, SPLAT_VERTEX, SPLAT_FRAGMENT);
    this.skinInputs = gl.createVertexArray();
    gl.bindVertexArray(this.skinInputs);
    const attribute = (location, data, size, integer) => {
      const buffer = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
      gl.enableVertexAttribArray(location);
      if (integer) gl.vertexAttribIPointer(location, size, gl.UNSIGNED_BYTE, 0, 0);
      else gl.vertexAttribPointer(location, size, gl.FLOAT, false, 0, 0);
    };
    attribute(0, avatar.position, 3, false);
    attribute(1, avatar.joints, 4, true);
    attribute(2, avatar.weights, 4, false);
    gl.bindVertexArray(null);
    const targets = new Float32Array(Math.max(1, avatar.targets.length) * n * 3);
    avatar.targets.forEach((t, k) => targets.set(t, k * n * 3));
    this.targetTexture = floatTexture(gl, 1, targets, 3, TEXTURE_WIDTH);
    this.jointTexture = floatTexture(gl, 0, new Float32Array(avatar.skinJoints.length * 16), 4, TEXTURE_WIDTH);
    this.morphTexture = floatTexture(gl, 2, new Float32Array(Math.max(1, avatar.targets.length)), 1, TEXTURE_WIDTH);
    const locations = (p, names) => Object.fromEntries(names.map((name) => [name, gl.getUniformLocation(p, name)]));
    this.skinUniforms = locations(this.skin, ["u_joint_matrices", "u_targets", "u_morph", "u_count", "u_target_count"]);
    this.splatUniforms = locations(this.splat, ["u_R", "u_t", "u_intrinsics", "u_size"]);
    this.posed = gl.createBuffer();
    gl.bindBuffer(gl.TRANSFORM_FEEDBACK_BUFFER, this.posed);
    gl.bufferData(gl.TRANSFORM_FEEDBACK_BUFFER, n * 12, gl.DYNAMIC_READ);
    gl.bindBuffer(gl.TRANSFORM_FEEDBACK_BUFFER, null);
    this.feedback = gl.createTransformFeedback();
    this.posedCpu = new Float32Array(n * 3);
    this.instances = new Float32Array(n * 8);
    this.order = new Uint32Array(n);
    this.depth = new Float32Array(n);   // the sort's scratch arrays, reused every frame
    this.keys = new Uint16Array(n);
    this.counts = new Uint32Array(65537);
    this.instanceBuffer = gl.createBuffer();
    this.splatInputs = gl.createVertexArray();
    gl.bindVertexArray(this.splatInputs);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.instanceBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, this.instances.byteLength, gl.DYNAMIC_DRAW);
    for (const [location, offset] of [[0, 0], [1, 16]]) {
      gl.enableVertexAttribArray(location);
      gl.vertexAttribPointer(location, 4, gl.FLOAT, false, 32, offset);
      gl.vertexAttribDivisor(location, 1);
    }
    gl.bindVertexArray(null);
  }

  // morph + skin on the GPU; the posed centres come back into posedCpu
  pose(jointMatrices, weights) {
    const gl = this.gl, n = this.avatar.count, u = this.skinUniforms;
    updateTexture(gl, this.jointTexture, jointMatrices);
    if (weights.length) updateTexture(gl, this.morphTexture, weights);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, this.targetTexture.texture);
    gl.useProgram(this.skin);
    gl.uniform1i(u.u_joint_matrices, 0);
    gl.uniform1i(u.u_targets, 1);
    gl.uniform1i(u.u_morph, 2);
    gl.uniform1i(u.u_count, n);
    gl.uniform1i(u.u_target_count, this.avatar.targets.length);
    gl.bindVertexArray(this.skinInputs);
    gl.bindTransformFeedback(gl.TRANSFORM_FEEDBACK, this.feedback);
    gl.bindBufferBase(gl.TRANSFORM_FEEDBACK_BUFFER, 0, this.posed);
    gl.enable(gl.RASTERIZER_DISCARD);
    gl.beginTransformFeedback(gl.POINTS);
    gl.drawArrays(gl.POINTS, 0, n);
    gl.endTransformFeedback();
    gl.disable(gl.RASTERIZER_DISCARD);
    gl.bindBufferBase(gl.TRANSFORM_FEEDBACK_BUFFER, 0, null);
    gl.bindTransformFeedback(gl.TRANSFORM_FEEDBACK, null);
    gl.bindBuffer(gl.COPY_READ_BUFFER, this.posed);
    gl.getBufferSubData(gl.COPY_READ_BUFFER, 0, this.posedCpu);
    gl.bindBuffer(gl.COPY_READ_BUFFER, null);
    gl.bindVertexArray(null);
  }

  // back-to-front order by depth along the view direction: a counting sort on 16-bit depths
  sort(camera) {
    const n = this.avatar.count, p = this.posedCpu, f = camera.R.slice(6, 9);
    const depth = this.depth, keys = this.keys, counts = this.counts;
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const d = f[0] * p[3 * i] + f[1] * p[3 * i + 1] + f[2] * p[3 * i + 2];
      depth[i] = d; lo = Math.min(lo, d); hi = Math.max(hi, d);
    }
    const scale = hi > lo ? 65535 / (hi - lo) : 0;
    counts.fill(0);
    for (let i = 0; i < n; i++) { keys[i] = 65535 - Math.round((depth[i] - lo) * scale); counts[keys[i] + 1]++; }
    for (let k = 1; k < counts.length; k++) counts[k] += counts[k - 1];
    for (let i = 0; i < n; i++) this.order[counts[keys[i]]++] = i;
  }

  draw(camera, background) {
    const gl = this.gl, a = this.avatar, out = this.instances;
    this.sort(camera);
    for (let r = 0; r < a.count; r++) {
      const i = this.order[r], o = 8 * r;
      out[o] = this.posedCpu[3 * i]; out[o + 1] = this.posedCpu[3 * i + 1]; out[o + 2] = this.posedCpu[3 * i + 2];
      out[o + 3] = a.scale[3 * i];
      out[o + 4] = a.color[3 * i]; out[o + 5] = a.color[3 * i + 1]; out[o + 6] = a.color[3 * i + 2];
      out[o + 7] = a.opacity[i];
    }
    gl.bindBuffer(gl.ARRAY_BUFFER, this.instanceBuffer);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, out);
    gl.viewport(0, 0, camera.width, camera.height);
    gl.clearColor(background[0], background[1], background[2], 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.useProgram(this.splat);
    const u = this.splatUniforms;
    gl.uniformMatrix3fv(u.u_R, true, camera.R);  // R is row-major: rows = camera axes
    gl.uniform3fv(u.u_t, camera.t);
    gl.uniform4f(u.u_intrinsics, camera.f, camera.f, camera.width / 2, camera.height / 2);
    gl.uniform2f(u.u_size, camera.width, camera.height);
    gl.bindVertexArray(this.splatInputs);
    gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, a.count);
    gl.bindVertexArray(null);
  }
}

// -- camera: a look-at with the program's conventions (x right, y down, z forward) -----------------

function lookAt(eye, target, fovDeg, width, height) {
  const sub = (a, b) => a.map((v, i) => v - b[i]);
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const unit = (a) => { const n = Math.hypot(...a); return a.map((v) => v / n); };
  const forward = unit(sub(target, eye));
  let right = cross(forward, [0, 1, 0]);
  if (Math.hypot(...right) < 1e-9) right = cross(forward, [0, 0, 1]);
  right = unit(right);
  const down = cross(forward, right);
  const R = new Float32Array([...right, ...down, ...forward]);
  const t = [0, 1, 2].map((r) => -(R[3 * r] * eye[0] + R[3 * r + 1] * eye[1] + R[3 * r + 2] * eye[2]));
  return { R, t, f: 0.5 * height / Math.tan(fovDeg * Math.PI / 360), width, height };
}

// -- the page -------------------------------------------------------------------------------------

const numbers = (text) => text.split(",").map(Number);

async function main() {
  const gl = canvas.getContext("webgl2", { antialias: false, premultipliedAlpha: false, preserveDrawingBuffer: true });
  if (!gl) fail("this browser has no WebGL2");
  const avatar = new Avatar(await loadGlb(params.get("src") || "avatar.glb"));
  const renderer = new Renderer(gl, avatar);
  message.style.display = "none";

  const picker = document.getElementById("motion");
  const scrub = document.getElementById("scrub");
  const play = document.getElementById("play");
  const label = document.getElementById("frame");
  if (params.get("ui") === "0") document.getElementById("bar").classList.add("hidden");
  avatar.animations.forEach((a, i) => picker.add(new Option(`${a.name} (${a.keys} frames)`, String(i))));
  const wanted = avatar.animations.findIndex((a) => a.name === params.get("motion"));
  const state = { animation: Math.max(0, wanted), time: 0,
                  playing: params.get("paused") !== "1" && !params.has("frame"), last: null };
  picker.value = String(state.animation);
  const background = params.has("bg") ? [0, 2, 4].map((i) => parseInt(params.get("bg").slice(i, i + 2), 16) / 255)
                                       : [0.094, 0.094, 0.11];
  const target = params.has("target") ? numbers(params.get("target")) : avatar.centre;
  const eye0 = params.has("eye") ? numbers(params.get("eye")) : [target[0], target[1], target[2] + 1.6 * avatar.height + 0.5];
  const fov = Number(params.get("fov") || 35);
  const offset = eye0.map((v, i) => v - target[i]);
  const orbit = { radius: Math.hypot(...offset), yaw: Math.atan2(offset[0], offset[2]),
                  pitch: Math.asin(offset[1] / Math.hypot(...offset)) };
  const eyeOf = () => [target[0] + orbit.radius * Math.cos(orbit.pitch) * Math.sin(orbit.yaw),
                       target[1] + orbit.radius * Math.sin(orbit.pitch),
                       target[2] + orbit.radius * Math.cos(orbit.pitch) * Math.cos(orbit.yaw)];
  let orbited = false;

  const resize = () => {
    const width = Math.floor(Number(params.get("width")) || innerWidth);
    const height = Math.floor(Number(params.get("height")) || innerHeight);
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  };
  const setAnimation = (i) => { state.animation = i; state.time = 0; scrub.max = String(avatar.animations[i].keys - 1); };
  setAnimation(state.animation);
  if (params.has("frame")) state.time = Math.min(Number(params.get("frame")), avatar.animations[state.animation].keys - 1)
                                        / avatar.animations[state.animation].fps;
  picker.onchange = () => setAnimation(Number(picker.value));
  play.onclick = () => { state.playing = !state.playing; };
  scrub.oninput = () => { state.playing = false; state.time = Number(scrub.value) / avatar.animations[state.animation].fps; };
  addEventListener("keydown", (e) => { if (e.code === "Space") { state.playing = !state.playing; e.preventDefault(); } });
  let drag = null;
  canvas.onpointerdown = (e) => { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); };
  canvas.onpointerup = () => { drag = null; };
  canvas.onpointermove = (e) => {
    if (!drag) return;
    orbit.yaw -= 0.01 * (e.clientX - drag[0]);
    orbit.pitch = Math.max(-1.5, Math.min(1.5, orbit.pitch + 0.01 * (e.clientY - drag[1])));
    drag = [e.clientX, e.clientY];
    orbited = true;
  };
  canvas.onwheel = (e) => { orbit.radius *= Math.exp(0.001 * e.deltaY); orbited = true; e.preventDefault(); };

  const frame = (now) => {
    resize();
    const a = avatar.animations[state.animation];
    if (state.playing && state.last !== null) state.time = (state.time + (now - state.last) / 1000) % (a.duration + 1 / a.fps);
    state.last = now;
    const key = Math.min(a.keys - 1, Math.round(state.time * a.fps));
    const eye = orbited ? eyeOf() : eye0;
    const shown = [state.animation, state.time, ...eye, canvas.width, canvas.height].join();
    if (shown !== state.shown) {  // paused and still: nothing to pose or draw
      const sampled = avatar.sample(state.animation, state.time);
      renderer.pose(avatar.jointMatrices(sampled.locals), sampled.weights);
      renderer.draw(lookAt(eye, target, fov, canvas.width, canvas.height), background);
      state.shown = shown;
    }
    scrub.value = String(key);
    label.textContent = `${key + 1} / ${a.keys}`;
    play.textContent = state.playing ? "pause" : "play";
    document.title = `ready: ${a.name} frame ${key}`;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

main().catch((error) => { message.textContent = String(error); message.style.display = "block"; document.title = "error"; });
