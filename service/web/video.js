// The page's video section: upload a clip as a job (POST /v1/videos), follow its progress, play and
// download the result. Self-contained: it shares only the API key (localStorage) with app.js.
"use strict";

(() => {
  const KEY = "atelier.apiKey";
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 500;
  const job = { id: null, timer: null, resultUrl: null };

  function headers() {
    const key = localStorage.getItem(KEY);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  async function call(path, options = {}) {
    const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
    if (response.ok) return response;
    let message = `HTTP ${response.status}`;
    if ((response.headers.get("content-type") || "").includes("json")) {
      const problem = await response.json();
      message = [problem.title, problem.detail].filter(Boolean).join(": ") || message;
    }
    throw new Error(message);
  }

  function say(text, isError = false) {
    const status = $("video-status");
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  async function loadPresets() {
    try {
      const listing = await (await call("/v1/styles?limit=1")).json();
      const select = $("video-preset");
      select.textContent = "";
      for (const preset of listing.presets) select.append(new Option(preset.name, preset.name));
    } catch (error) {
      say(`The presets could not be loaded: ${error.message}`, true);
    }
  }

  function stopPolling() {
    if (job.timer !== null) clearTimeout(job.timer);
    job.timer = null;
  }

  async function poll() {
    try {
      const state = await (await call(`/v1/videos/${job.id}`)).json();
      $("video-progress").value = state.progress;
      // frames_total is 0 until a worker has probed the clip (a replica without PyAV queues it unprobed).
      say(state.frames_total ? `${state.status}: ${state.frames_done} of ${state.frames_total} frames` : state.status);
      if (state.status === "done") return showResult();
      if (state.status === "failed" || state.status === "cancelled") {
        $("video-cancel").hidden = true;
        return say(`${state.status}${state.error ? `: ${state.error}` : ""}`, state.status === "failed");
      }
      job.timer = setTimeout(poll, POLL_MS);
    } catch (error) {
      say(error.message, true);
    }
  }

  async function showResult() {
    $("video-cancel").hidden = true;
    const blob = await (await call(`/v1/videos/${job.id}/result`)).blob();
    if (job.resultUrl) URL.revokeObjectURL(job.resultUrl);
    job.resultUrl = URL.createObjectURL(blob);
    const player = $("video-result");
    player.src = job.resultUrl;
    player.hidden = false;
    const link = $("video-download");
    link.href = job.resultUrl;
    link.download = `atelier-${job.id}.${blob.type === "video/mp4" ? "mp4" : "mkv"}`;
    link.hidden = false;
    say("done");
  }

  async function submit(event) {
    event.preventDefault();
    stopPolling();
    const file = $("video-file").files[0];
    if (!file) return say("Choose a clip first.", true);
    const form = new FormData();
    form.append("video", file);
    form.append("preset", $("video-preset").value);
    form.append("consistency", $("video-consistency").value);
    if ($("video-max-side").value) form.append("max_side", $("video-max-side").value);
    $("video-result").hidden = true;
    $("video-download").hidden = true;
    $("video-progress").value = 0;
    say("uploading…");
    try {
      const state = await (await call("/v1/videos", { method: "POST", body: form })).json();
      job.id = state.id;
      $("video-cancel").hidden = false;
      poll();
    } catch (error) {
      say(error.message, true);
    }
  }

  async function cancel() {
    if (!job.id) return;
    stopPolling();
    try {
      await call(`/v1/videos/${job.id}`, { method: "DELETE" });
    } catch (error) {
      return say(error.message, true);
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("video-form").addEventListener("submit", submit);
    $("video-cancel").addEventListener("click", cancel);
    $("video-consistency").addEventListener("input", () => {
      $("video-consistency-value").textContent = Number($("video-consistency").value).toFixed(2);
    });
    loadPresets();
  });
})();
