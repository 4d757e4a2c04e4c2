// Poses a Live2D model exactly as asked and draws one frame; the Python driver screenshots it.
// Time is virtual (UtSystem's user clock), so the same pose always gives the same picture.
'use strict';
(function () {
  const L = window.L2D;
  const FRAME_MS = 1000 / 30;
  // Expressions fade in over up to a second: simulate at least this long before the frame.
  const SETTLE_MS = 1500;
  // UtSystem treats a user time of 0 as "use the wall clock": start the virtual clock later.
  const CLOCK_START_MS = 100000;
  // Head-angle parameters a motion may also drive; the pose's offsets add to them.
  const ANGLE_PARAMS = { angle_x: 'PARAM_ANGLE_X', angle_y: 'PARAM_ANGLE_Y', angle_z: 'PARAM_ANGLE_Z',
                         body_angle_x: 'PARAM_BODY_ANGLE_X' };

  const canvas = document.getElementById('stage');
  const gl = canvas.getContext('webgl', { alpha: true, premultipliedAlpha: true,
                                          preserveDrawingBuffer: true, antialias: true });
  L.Live2D.setGL(gl);
  L.Live2DFramework.setPlatformManager({
    jsonParseFromBytes: (buf) => JSON.parse(new TextDecoder().decode(buf).replace(/^\uFEFF/, '')),
    log: (text) => console.log(text),
  });

  let current = null;  // the loaded model: bytes, textures, motions, expressions

  async function bytes(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.arrayBuffer();
  }

  function texture(url, premultiply) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => {
        const tex = gl.createTexture();
        gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, premultiply ? 1 : 0);
        gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, 1);
        gl.activeTexture(gl.TEXTURE0);
        gl.bindTexture(gl.TEXTURE_2D, tex);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, image);
        gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
        gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR_MIPMAP_NEAREST);
        gl.generateMipmap(gl.TEXTURE_2D);
        resolve(tex);
      };
      image.onerror = () => reject(new Error(`${url}: not an image`));
      image.src = url;
    });
  }

  // Loads model.json and everything it names; returns what a pose may choose from.
  async function load(url) {
    if (current && current.url === url) return describe(current);
    if (current) current.textures.forEach((tex) => gl.deleteTexture(tex));
    current = null;
    const base = url.slice(0, url.lastIndexOf('/') + 1);
    const setting = JSON.parse(new TextDecoder().decode(await bytes(url)));
    const moc = await bytes(base + setting.model);
    const probe = L.Live2DModelWebGL.loadModel(moc);
    const textures = [];
    for (const file of setting.textures) {
      textures.push(await texture(base + file, !probe.isPremultipliedAlpha()));
    }
    const motions = [];
    for (const group of Object.keys(setting.motions || {}).sort()) {
      const list = setting.motions[group];
      for (let i = 0; i < list.length; i++) {
        const motion = L.Live2DMotion.loadMotion(await bytes(base + list[i].file));
        // No fading in or out: a pose is the motion's own frame at the sampled time, never a
        // blend with the rest pose (blends show both of two alternative arms, half transparent).
        motion.setFadeIn(0);
        motion.setFadeOut(0);
        const loop = motion.getDurationMSec() < 0;
        motions.push({ group, index: i, file: list[i].file, motion,
                       duration_ms: loop ? motion.getLoopDurationMSec() : motion.getDurationMSec() });
      }
    }
    const expressions = {};
    for (const entry of setting.expressions || []) {
      expressions[entry.name] = L.L2DExpressionMotion.loadJson(await bytes(base + entry.file));
    }
    const physics = setting.physics ? await bytes(base + setting.physics) : null;
    const pose = setting.pose ? await bytes(base + setting.pose) : null;
    current = { url, setting, moc, textures, motions, expressions, physics, pose,
                hitAreas: (setting.hit_areas || []).map((area) => area.id) };
    return describe(current);
  }

  function describe(model) {
    return {
      expressions: Object.keys(model.expressions).sort(),
      motions: model.motions.map(({ group, index, file, duration_ms }) => ({ group, index, file, duration_ms })),
      hit_areas: model.hitAreas,
      canvas: [probeSize().w, probeSize().h],
    };
  }

  function probeSize() {
    const model = L.Live2DModelWebGL.loadModel(current.moc);
    return { w: model.getCanvasWidth(), h: model.getCanvasHeight() };
  }

  // A fresh model instance: every pose starts from the model's own defaults.
  function freshModel() {
    const model = L.Live2DModelWebGL.loadModel(current.moc);
    current.textures.forEach((tex, i) => model.setTexture(i, tex));
    for (const param of current.setting.init_param || []) model.setParamFloat(param.id, param.value);
    for (const part of current.setting.init_parts_visible || []) model.setPartsOpacity(part.id, part.value);
    model.saveParam();
    return model;
  }

  // Runs the pose's timeline on the virtual clock; returns the posed model and the motion time.
  function simulate(pose) {
    const clip = pose.motion === null ? null : current.motions[pose.motion];
    const motionFrames = clip ? Math.round(pose.motion_phase * clip.duration_ms / FRAME_MS) : 0;
    const frames = Math.max(Math.ceil(SETTLE_MS / FRAME_MS), motionFrames);
    L.UtSystem.setUserTimeMSec(CLOCK_START_MS);
    const model = freshModel();
    const physics = current.physics ? L.L2DPhysics.load(current.physics) : null;
    const parts = current.pose ? L.L2DPose.load(current.pose) : null;
    const motions = new L.L2DMotionManager();
    const expressions = new L.L2DMotionManager();
    if (pose.expression !== null) expressions.startMotion(current.expressions[pose.expression], false);
    for (let k = 0; k <= frames; k++) {
      L.UtSystem.setUserTimeMSec(CLOCK_START_MS + k * FRAME_MS);
      if (clip && k === frames - motionFrames) motions.startMotion(clip.motion, false);
      model.loadParam();
      motions.updateParam(model);
      model.saveParam();
      expressions.updateParam(model);
      for (const [key, id] of Object.entries(ANGLE_PARAMS)) model.addToParamFloat(id, pose[key], 1);
      model.setParamFloat('PARAM_BREATH', pose.breath, 1);
      if (physics) physics.updateParam(model);
      if (pose.eye_open !== null) {
        for (const id of ['PARAM_EYE_L_OPEN', 'PARAM_EYE_R_OPEN']) {
          model.setParamFloat(id, model.getParamFloat(id) * pose.eye_open, 1);
        }
      }
      if (pose.mouth_open !== null) model.setParamFloat('PARAM_MOUTH_OPEN_Y', pose.mouth_open, 1);
      if (parts) parts.updateParam(model);
      if (parts && k === frames) {
        // Alternative parts (arms) cross-fade for half a second when a motion switches them:
        // finish that fade, so the figure shows one arm, opaque, as at rest.
        L.UtSystem.setUserTimeMSec(CLOCK_START_MS + k * FRAME_MS + 1000);
        parts.updateParam(model);
      }
      model.update();
    }
    return { model, motion_ms: motionFrames * FRAME_MS };
  }

  // Column-major matrix taking model-canvas units (y down) inside `region` onto the whole canvas.
  function regionMatrix([x0, y0, x1, y1]) {
    const m = new Float32Array(16);
    m[0] = 2 / (x1 - x0); m[12] = -2 * x0 / (x1 - x0) - 1;
    m[5] = -2 / (y1 - y0); m[13] = 2 * y0 / (y1 - y0) + 1;
    m[10] = 1; m[15] = 1;
    return m;
  }

  function draw(model, region) {
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    model.setMatrix(regionMatrix(region));
    model.draw();
  }

  // Bounding box [x0, y0, x1, y1) of pixels with alpha > 0, in canvas pixels (y down); null if none.
  function alphaBox() {
    const w = canvas.width, h = canvas.height;
    const pixels = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (pixels[(y * w + x) * 4 + 3] > 0) {
          if (x < x0) x0 = x; if (x > x1) x1 = x;
          if (y < y0) y0 = y; if (y > y1) y1 = y;
        }
      }
    }
    // readPixels rows start at the bottom.
    return x1 < 0 ? null : [x0, h - 1 - y1, x1 + 1, h - y0];
  }

  function toModel(box, region) {
    const sx = (region[2] - region[0]) / canvas.width, sy = (region[3] - region[1]) / canvas.height;
    return [region[0] + box[0] * sx, region[1] + box[1] * sy, region[0] + box[2] * sx, region[1] + box[3] * sy];
  }

  function toPixels(box, region) {
    const sx = canvas.width / (region[2] - region[0]), sy = canvas.height / (region[3] - region[1]);
    return [(box[0] - region[0]) * sx, (box[1] - region[1]) * sy, (box[2] - region[0]) * sx, (box[3] - region[1]) * sy];
  }

  // Bounds of a mesh (possibly an invisible reference such as D_REF.HEAD) in model units.
  function meshBox(model, index) {
    const points = index < 0 ? null : model.getTransformedPoints(index);
    if (!points || points.length < 2) return null;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < points.length; i += 2) {
      x0 = Math.min(x0, points[i]); x1 = Math.max(x1, points[i]);
      y0 = Math.min(y0, points[i + 1]); y1 = Math.max(y1, points[i + 1]);
    }
    return [x0, y0, x1, y1];
  }

  // Every mesh's id and bounds: the driver picks the one that moves with the face.
  function allMeshes(model, region) {
    const list = model.getModelContext()._$aS;  // the core's draw-data list (minified name)
    const meshes = [];
    for (let i = 0; i < list.length; i++) {
      const box = list[i] ? meshBox(model, i) : null;
      if (box) meshes.push({ id: String(list[i].getDrawDataID()), box: toPixels(box, region) });
    }
    return meshes;
  }

  // The face box in model units: the anchor mesh's bounds through the calibrated relation
  // [dx, dy, sw, sh] (offsets and sizes in units of the anchor's width and height).
  function faceFromAnchor(anchor, rel) {
    if (!anchor || !rel) return anchor;
    const w = anchor[2] - anchor[0], h = anchor[3] - anchor[1];
    const x0 = anchor[0] + rel[0] * w, y0 = anchor[1] + rel[1] * h;
    return [x0, y0, x0 + rel[2] * w, y0 + rel[3] * h];
  }

  // Poses, finds the whole figure, then frames it as the pose asks and draws the final frame.
  function render(pose) {
    canvas.width = pose.size[0]; canvas.height = pose.size[1];
    const { model, motion_ms } = simulate(pose);
    // Pass 1: a wide view of the model canvas (motions can swing limbs past its edges).
    const cw = model.getCanvasWidth(), ch = model.getCanvasHeight();
    const side = 1.6 * Math.max(cw, ch);
    const wide = [cw / 2 - side / 2, ch / 2 - side / 2, cw / 2 + side / 2, ch / 2 + side / 2];
    draw(model, wide);
    const seen = alphaBox();
    if (!seen) throw new Error('the model drew nothing');
    const figure = toModel(seen, wide);
    const anchor = pose.anchor ? meshBox(model, model.getDrawDataIndex(pose.anchor)) : null;
    if (pose.anchor && !anchor) throw new Error(`no mesh ${pose.anchor}`);
    const face = faceFromAnchor(anchor, pose.anchor_rel);
    const region = frame(figure, face, pose);
    draw(model, region);
    return {
      motion_ms,
      region,
      scale: canvas.width / (region[2] - region[0]),
      figure_box: toPixels(figure, region),
      anchor_box: anchor ? toPixels(anchor, region) : null,
      face_box: face ? toPixels(face, region) : null,
      meshes: pose.list_meshes ? allMeshes(model, region) : null,
      params: Object.fromEntries(['PARAM_ANGLE_X', 'PARAM_ANGLE_Y', 'PARAM_ANGLE_Z', 'PARAM_BODY_ANGLE_X',
                                  'PARAM_EYE_L_OPEN', 'PARAM_EYE_R_OPEN', 'PARAM_MOUTH_OPEN_Y']
        .map((id) => [id, model.getParamFloat(id)])),
    };
  }

  // The view region for framing pose.zoom: 0 = the whole figure with a margin, 1 = a bust (down
  // to pose.bust_below_face face heights below the face); in between, geometrically. A figure
  // that fits is centred; one that does not keeps its top margin and is centred on the face.
  function frame(figure, face, pose) {
    const aspect = pose.size[0] / pose.size[1];
    const margin = pose.margin;
    const fw = figure[2] - figure[0], fh = figure[3] - figure[1];
    const fullH = Math.max(fh, fw / aspect) / (1 - 2 * margin);
    let h = fullH;
    if (face && pose.zoom > 0) {
      const bustH = ((face[3] - figure[1]) + pose.bust_below_face * (face[3] - face[1])) / (1 - margin);
      h = fullH * Math.pow(Math.min(1, bustH / fullH), pose.zoom);
    }
    const w = h * aspect;
    const fits = h >= fullH * 0.999;
    const cx = fits || !face ? (figure[0] + figure[2]) / 2 : (face[0] + face[2]) / 2;
    const top = fits ? (figure[1] + figure[3]) / 2 - h / 2 : figure[1] - margin * h;
    return [cx - w / 2, top, cx + w / 2, top + h];
  }

  window.live2dRender = { load, render };
  document.body.dataset.ready = 'yes';
})();
