// Atelier's web page: every action is a fetch() to the public /v1 API, as any other client would make.
"use strict";

const KEY_STORAGE = "atelier.apiKey";
const $ = (id) => document.getElementById(id);

const state = {
  content: null,      // the chosen photo (File)
  resultUrl: null,    // blob: URL of the current result, revoked when replaced
  previewUrl: null,   // blob: URL of the photo preview
  presetsModel: null, // the N-style model (name/version) the gallery shows
};

// An error answered by the API: RFC 9457 problem details (title, status, detail).
class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title);
    this.status = status;
    this.title = title;
  }
}

function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.ok) return response;
  let title = `HTTP ${response.status}`;
  let detail = "";
  if ((response.headers.get("content-type") || "").includes("json")) {
    const problem = await response.json();
    title = problem.title || title;
    detail = problem.detail || "";
  }
  if (response.status === 401) $("key-panel").open = true;
  throw new ApiError(response.status, title, detail);
}

function showError(error) {
  const box = $("error");
  box.textContent = "";
  const strong = document.createElement("strong");
  const message = document.createElement("span");
  if (error instanceof ApiError) {
    strong.textContent = `${error.title} (${error.status}): `;
    message.textContent = error.message;
  } else {
    strong.textContent = "Error: ";
    message.textContent = error.message || String(error);
  }
  box.append(strong, message);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// ---- photo: file input or drag and drop ----

function setContent(file) {
  if (!file) return;
  state.content = file;
  $("content-name").textContent = `${file.name} (${Math.ceil(file.size / 1024)} kB)`;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(file);
  const preview = $("input-preview");
  // A file the browser cannot show may still be one the API reads (TIFF): hide the preview, keep the file.
  preview.onerror = () => {
    preview.hidden = true;
  };
  preview.src = state.previewUrl;
  preview.hidden = false;
}

function setUpDropZone() {
  const zone = $("drop-zone");
  $("content").addEventListener("change", (event) => setContent(event.target.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    setContent(event.dataTransfer.files[0]);
  });
}

// ---- preset gallery: thumbnails rendered by the service ----

function galleryTile(preset, index) {
  const id = `preset-${preset.index}`;
  const tile = document.createElement("div");
  tile.className = "tile";
  const radio = document.createElement("input");
  radio.type = "radio";
  radio.name = "preset";
  radio.id = id;
  radio.value = preset.name;
  radio.checked = index === 0;
  const label = document.createElement("label");
  label.htmlFor = id;
  const image = document.createElement("img");
  image.alt = ""; // the label's text names the preset; the thumbnail is decoration
  image.width = image.height = 96;
  const name = document.createElement("span");
  name.textContent = preset.name;
  label.append(image, name);
  tile.append(radio, label);
  return { tile, image };
}

async function loadThumbnail(preset, image) {
  const query = new URLSearchParams({ model: preset.model });
  const response = await api(`/v1/presets/${encodeURIComponent(preset.name)}/thumbnail?${query}`);
  image.src = URL.createObjectURL(await response.blob());
}

async function loadGallery() {
  const status = $("gallery-status");
  const gallery = $("gallery");
  gallery.querySelectorAll(".tile").forEach((tile) => tile.remove());
  $("preset-b").textContent = "";
  try {
    const listing = await (await api("/v1/styles?limit=1")).json();
    if (!listing.presets.length) {
      status.textContent = "This server has no presets; upload your own painting.";
      return;
    }
    // One N-style model per gallery, so that any two presets can be blended.
    state.presetsModel = listing.presets[0].model;
    const presets = listing.presets.filter((preset) => preset.model === state.presetsModel);
    const loads = presets.map((preset, index) => {
      const { tile, image } = galleryTile(preset, index);
      gallery.append(tile);
      $("preset-b").append(new Option(preset.name, preset.name, false, index === 1));
      return loadThumbnail(preset, image);
    });
    status.textContent = `${presets.length} presets of ${state.presetsModel}`;
    await Promise.all(loads);
  } catch (error) {
    status.textContent = "The presets could not be loaded.";
    showError(error);
  }
}

// ---- the request ----

function selectedPreset() {
  const checked = document.querySelector('input[name="preset"]:checked');
  if (!checked) throw new Error("Choose a preset from the gallery.");
  return checked.value;
}

function requireFile(input, what) {
  const file = input.files[0];
  if (!file) throw new Error(`Choose ${what}.`);
  return file;
}

async function registerStyle(file) {
  const form = new FormData();
  form.append("style", file);
  return (await (await api("/v1/styles", { method: "POST", body: form })).json()).id;
}

// The style fields of POST /v1/stylize for the current choices (registers uploads first for a blend).
async function styleFields() {
  const fromPreset = $("source-preset").checked;
  const mix = Number($("mix").value) / 100;
  if (!$("blend").checked) {
    if (fromPreset) return [["preset", selectedPreset()], ["model", state.presetsModel]];
    return [["style", requireFile($("style"), "your painting")]];
  }
  const weights = `${(1 - mix).toFixed(2)},${mix.toFixed(2)}`;
  if (fromPreset) {
    const styles = `preset:${selectedPreset()},preset:${$("preset-b").value}`;
    return [["styles", styles], ["weights", weights], ["model", state.presetsModel]];
  }
  const first = requireFile($("style"), "your painting");
  const second = requireFile($("style-b"), "your second painting");
  const ids = await Promise.all([registerStyle(first), registerStyle(second)]);
  return [["styles", ids.join(",")], ["weights", weights]];
}

function setBusy(busy) {
  $("stylize").disabled = busy;
  $("output").setAttribute("aria-busy", String(busy));
  $("progress").hidden = !busy;
  clearInterval(state.timer);
  if (!busy) return;
  const started = performance.now();
  const tick = () => {
    $("progress-text").textContent = `Stylising… ${((performance.now() - started) / 1000).toFixed(1)} s`;
  };
  tick();
  state.timer = setInterval(tick, 100);
}

function showResult(blob, response, seconds) {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  const result = $("result");
  result.onload = () => {
    const style = response.headers.get("X-Style-Id") || "";
    $("result-caption").textContent =
      `${result.naturalWidth}×${result.naturalHeight} · ${response.headers.get("X-Model")} · ` +
      `${style} · brush ${response.headers.get("X-Stroke-Scale") || "1"}× · ${seconds.toFixed(1)} s`;
  };
  result.src = state.resultUrl;
  result.hidden = false;
  const download = $("download");
  const stem = (state.content.name || "photo").replace(/\.[^.]*$/, "");
  download.href = state.resultUrl;
  download.download = `${stem}-stylised.png`;
  download.hidden = false;
}

async function stylize(event) {
  event.preventDefault();
  clearError();
  if (!state.content) {
    showError(new Error("Choose a photo first."));
    return;
  }
  setBusy(true);
  const started = performance.now();
  try {
    const form = new FormData();
    form.append("content", state.content);
    for (const [name, value] of await styleFields()) form.append(name, value);
    form.append("strength", $("strength").value);
    form.append("preserve_color", String($("preserve-color").checked));
    // 0 on the slider is "auto": the server's default for the output size (X-Stroke-Scale says which).
    if (Number($("stroke-scale").value) > 0) form.append("stroke_scale", $("stroke-scale").value);
    if ($("max-side").value) form.append("max_side", $("max-side").value);
    const response = await api("/v1/stylize", { method: "POST", body: form });
    showResult(await response.blob(), response, (performance.now() - started) / 1000);
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

// ---- live: the camera painted over the /v1/live WebSocket (docs/live.md) ----

const LIVE_PROTOCOL = "atelier.live.v1";
const LIVE_MAX_AHEAD = 2;  // frames sent and not yet answered: one being painted, one waiting
const LIVE_CAPTURE_FPS = 30;
// Temporal smoothing: each painted frame is drawn over the previous one at this opacity, an
// exponential moving average of the painted stream (see docs/live.md for why this is enough).
const LIVE_SMOOTHING_ALPHA = 0.6;
const CLOSE_REASONS = {
  1001: "The server closed the idle connection.",
  1008: "Missing or invalid API key: enter it under “API key” above.",
  1011: "The server hit an internal error.",
  1012: "The server is restarting; try again shortly.",
  1013: "The server is busy or still starting; try again shortly.",
};

const live = {
  ws: null, stream: null, timer: null, seq: 0, answered: -1, sentAt: new Map(),
  timing: null, drawing: Promise.resolve(), paintedAt: [], latencies: [], painted: 0,
  capture: document.createElement("canvas"),
};

function base64url(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function showLiveError(message) {
  $("live-error").textContent = message;
  $("live-error").hidden = false;
}

function clearLiveError() {
  $("live-error").hidden = true;
  $("live-error").textContent = "";
}

function cameraMessage(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was denied. Allow the camera for this site in the browser, then press Start camera again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Connect one, then press Start camera again.";
    case "NotReadableError":
    case "AbortError":
      return "The camera is in use by another application, or could not be started.";
    default:
      return `The camera could not be started: ${(error && (error.message || error.name)) || "unknown error"}.`;
  }
}

async function loadLiveStyles() {
  try {
    const listing = await (await api("/v1/styles?limit=500")).json();
    const presets = $("live-presets");
    const registered = $("live-registered");
    const chosen = $("live-style").value;
    presets.textContent = "";
    registered.textContent = "";
    for (const preset of listing.presets) {
      const option = new Option(preset.name, `preset:${preset.model}:${preset.name}`);
      presets.append(option);
    }
    for (const style of listing.items) addRegisteredOption(style.id, style.model, false);
    if (chosen) $("live-style").value = chosen;
  } catch (error) {
    // The gallery above already shows the API's error (a missing key, say): a status line is enough here.
    $("live-status").textContent = `The live styles could not be loaded: ${error.message}`;
  }
}

function addRegisteredOption(id, model, select) {
  const value = `id:${id}`;
  let option = [...$("live-registered").children].find((o) => o.value === value);
  if (!option) {
    option = new Option(`${id.slice(0, 12)}… (${model})`, value);
    $("live-registered").append(option);
  }
  if (select) $("live-style").value = value;
}

function liveSettings() {
  const value = $("live-style").value;
  if (value.startsWith("id:")) return { type: "settings", style_id: value.slice(3) };
  const [, model, name] = value.split(":");
  return { type: "settings", preset: name, model };
}

function sendLiveSettings() {
  if (live.ws && live.ws.readyState === WebSocket.OPEN && $("live-style").value) {
    live.ws.send(JSON.stringify(liveSettings()));
  }
}

async function useOwnPainting(event) {
  const file = event.target.files[0];
  if (!file) return;
  clearLiveError();
  try {
    const form = new FormData();
    form.append("style", file);
    const record = await (await api("/v1/styles", { method: "POST", body: form })).json();
    addRegisteredOption(record.id, record.model, true);
    sendLiveSettings();
  } catch (error) {
    showLiveError(error instanceof ApiError ? `${error.title} (${error.status}): ${error.message}` : error.message);
  }
}

function liveSize() {
  const [width, height] = $("live-size").value.split("x").map(Number);
  return { width, height };
}

function captureFrame() {
  const ws = live.ws;
  const video = $("live-camera");
  if (!ws || ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  if (live.seq - (live.answered + 1) >= LIVE_MAX_AHEAD) return;  // the server is busy: skip this frame
  const { width, height } = liveSize();
  live.capture.width = width;
  live.capture.height = height;
  live.capture.getContext("2d").drawImage(video, 0, 0, width, height);
  const seq = live.seq++;
  live.sentAt.set(seq, performance.now());
  live.capture.toBlob((blob) => {
    if (blob && live.ws === ws && ws.readyState === WebSocket.OPEN) ws.send(blob);
  }, "image/jpeg", 0.8);
}

function answered(seq) {
  // Frames are answered in order: a painted frame or an error for seq means every earlier one is done.
  for (const key of live.sentAt.keys()) if (key < seq) live.sentAt.delete(key);
  live.answered = Math.max(live.answered, seq);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
}

async function drawPainted(blob, timing) {
  const bitmap = await createImageBitmap(blob);
  const canvas = $("live-painted");
  const context = canvas.getContext("2d");
  let alpha = $("live-smoothing").checked ? LIVE_SMOOTHING_ALPHA : 1;
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;  // resizing clears the canvas: nothing to blend with
    canvas.height = bitmap.height;
    alpha = 1;
  }
  context.globalAlpha = alpha;
  context.drawImage(bitmap, 0, 0);
  context.globalAlpha = 1;
  bitmap.close();
  const now = performance.now();
  const sent = live.sentAt.get(timing.seq);
  if (sent !== undefined) live.latencies = [...live.latencies.slice(-29), now - sent];
  answered(timing.seq);
  live.painted += 1;
  live.paintedAt = [...live.paintedAt.filter((t) => now - t < 2000), now];
  const span = (now - live.paintedAt[0]) / 1000;
  const fps = live.paintedAt.length > 1 && span > 0 ? (live.paintedAt.length - 1) / span : 0;
  $("live-fps").textContent = `${fps.toFixed(1)} fps`;
  $("live-latency").textContent = `${Math.round(median(live.latencies))} ms`;
  $("live-frames").textContent = `${live.painted} painted`;
  $("live-frame-style").textContent = timing.style;
}

function onLiveMessage(event) {
  if (typeof event.data !== "string") {
    const timing = live.timing;
    live.timing = null;
    if (timing) live.drawing = live.drawing.then(() => drawPainted(event.data, timing)).catch(() => {});
    return;
  }
  const message = JSON.parse(event.data);
  if (message.type === "frame") {
    live.timing = message;
  } else if (message.type === "settings") {
    $("live-status").textContent = `Painting with ${message.style} (${message.model}).`;
  } else if (message.type === "error") {
    if (message.seq !== null) answered(message.seq);
    if (message.code === "unauthorized") $("key-panel").open = true;
    showLiveError(`${message.title} (${message.status}): ${message.detail}`);
  }
}

function onLiveClose(event) {
  const ws = event.target;
  if (live.ws !== ws) return;
  live.ws = null;
  if (event.code !== 1000) {
    const reason = CLOSE_REASONS[event.code] || `The connection closed (${event.code}).`;
    showLiveError(`${reason}${event.reason ? ` (${event.reason})` : ""}`);
  }
  stopLive();
}

async function startLive() {
  clearLiveError();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showLiveError("This page cannot use a camera here: browsers offer cameras only to HTTPS pages and localhost.");
    return;
  }
  const { width, height } = liveSize();
  $("live-start").disabled = true;
  $("live-status").textContent = "Asking for the camera…";
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: width }, height: { ideal: height } },
      audio: false,
    });
  } catch (error) {
    showLiveError(cameraMessage(error));
    $("live-status").textContent = "The camera is off.";
    $("live-start").disabled = false;
    return;
  }
  $("live-camera").srcObject = live.stream;
  Object.assign(live, { seq: 0, answered: -1, timing: null, paintedAt: [], latencies: [], painted: 0 });
  live.sentAt.clear();
  const protocols = [LIVE_PROTOCOL];
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) protocols.push(`base64url.bearer.${base64url(key)}`);  // browsers cannot send headers here
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/live`, protocols);
  live.ws = ws;
  ws.onopen = () => {
    $("live-status").textContent = "Connected; choosing the style…";
    sendLiveSettings();
  };
  ws.onmessage = onLiveMessage;
  ws.onclose = onLiveClose;
  live.timer = setInterval(captureFrame, 1000 / LIVE_CAPTURE_FPS);
  $("live-stop").disabled = false;
}

function stopLive() {
  clearInterval(live.timer);
  live.timer = null;
  if (live.ws) {
    const ws = live.ws;
    live.ws = null;
    ws.close(1000, "stopped");
  }
  if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
  live.stream = null;
  $("live-camera").srcObject = null;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
  $("live-status").textContent = "The camera is off.";
}

function setUpLive() {
  $("live-start").addEventListener("click", startLive);
  $("live-stop").addEventListener("click", () => {
    clearLiveError();
    stopLive();
  });
  $("live-style").addEventListener("change", sendLiveSettings);
  $("live-painting").addEventListener("change", useOwnPainting);
  loadLiveStyles();
}

// ---- wiring ----

function syncPanels() {
  const fromPreset = $("source-preset").checked;
  const blending = $("blend").checked;
  $("preset-panel").hidden = !fromPreset;
  $("upload-panel").hidden = fromPreset;
  $("blend-panel").hidden = !blending;
  $("blend-preset").hidden = !fromPreset;
  $("blend-upload").hidden = fromPreset;
}

function bindOutput(inputId, outputId, format) {
  const update = () => {
    $(outputId).textContent = format(Number($(inputId).value));
  };
  $(inputId).addEventListener("input", update);
  update();
}

function setUpKey() {
  $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    clearError();
    loadGallery();
    loadLiveStyles();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpKey();
  setUpDropZone();
  for (const id of ["source-preset", "source-upload", "blend"]) $(id).addEventListener("change", syncPanels);
  syncPanels();
  bindOutput("strength", "strength-value", (value) => value.toFixed(2));
  bindOutput("mix", "mix-value", (value) => `${value}% second`);
  bindOutput("stroke-scale", "stroke-scale-value", (value) => (value > 0 ? `${value.toFixed(1)}×` : "auto"));
  $("stylize-form").addEventListener("submit", stylize);
  setUpLive();
  loadGallery();
});
