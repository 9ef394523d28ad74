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
  loadGallery();
});
