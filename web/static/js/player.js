// The player: the job's stream in a full-window <video> (through the vendored hls.js when the
// stream is HLS), resuming where it was left and saving the position as it plays, with the
// keyboard shortcuts of most players and a buffering sign while a seek waits for the download.

import { api, ApiError } from "./api.js";
import { probeCapabilities } from "./capabilities.js";
import { STATUS, clock } from "./format.js";

const SAVE_EVERY = 5000;
const RETRY_NOT_PLAYABLE = 3000;
const SEEK_STEP = 10;
const VOLUME_STEP = 0.1;
// A saved position this close to either end starts from the beginning instead.
const RESUME_MARGIN = 5;

const video = document.getElementById("player");
const box = document.getElementById("player-box");
const buffering = document.getElementById("buffering");
const errorBox = document.getElementById("player-error");
const jobId = video ? video.dataset.jobId : null;
const jobPath = jobId ? `/jobs/${encodeURIComponent(jobId)}` : "";

let hls = null;
let resumed = false; // no position is saved before the saved one was applied
let lastSaved = null;
let reloads = 0;
let hadMetadata = false;
let osdTimer = null;
// What this browser plays, measured once; the server plans the stream from it.
const capabilities = JSON.stringify(probeCapabilities());

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function setBuffering(on) {
  buffering.hidden = !on;
}

function osd(text) {
  let el = document.getElementById("osd");
  if (!el) {
    el = document.createElement("div");
    el.id = "osd";
    el.className = "osd";
    el.setAttribute("aria-live", "polite");
    box.append(el);
  }
  el.textContent = text;
  el.hidden = false;
  clearTimeout(osdTimer);
  osdTimer = setTimeout(() => {
    el.hidden = true;
  }, 1200);
}

// ------------------------------------------------------------------ stream

async function streamInfo() {
  for (;;) {
    try {
      const query = `?capabilities=${encodeURIComponent(capabilities)}`;
      const stream = await api(`/movies/${encodeURIComponent(jobId)}/stream${query}`);
      showError("");
      return stream;
    } catch (error) {
      if (!(error instanceof ApiError) || (error.status !== 400 && error.status !== 0)) throw error;
      if (error.status === 400) await stopIfOver();
      // Not playable yet (or the network blinked): say why, and ask again shortly. The API's
      // pointer to the event stream is for programs, not people.
      const why = error.message.replace(/;\s*follow \S+$/, "");
      showError(`${why.charAt(0).toUpperCase()}${why.slice(1)}. Trying again…`);
      await sleep(RETRY_NOT_PLAYABLE);
    }
  }
}

// A failed or deleted job will never play: say so instead of asking again forever.
async function stopIfOver() {
  let job;
  try {
    job = await api(jobPath);
  } catch {
    return;
  }
  if (job.status === STATUS.ERROR) {
    throw new Error(`The download failed: ${job.error_message || "no reason given"}.`);
  }
  if (job.status === STATUS.DELETED) throw new Error("This download was deleted.");
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error("The HLS player could not be loaded."));
    document.head.append(script);
  });
}

async function attachHls(url) {
  await loadScript(video.dataset.hls);
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    hls = new Hls({ backBufferLength: 60 });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        setBuffering(true);
        hls.startLoad();
      } else {
        showError(`Playback failed: ${data.details || "unknown error"}.`);
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    return;
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari plays HLS itself
    return;
  }
  throw new Error("This browser cannot play this stream (HLS without Media Source Extensions).");
}

async function attach(stream) {
  if (hls) {
    hls.destroy();
    hls = null;
  }
  if (stream.kind === "hls") await attachHls(stream.url);
  else video.src = stream.url;
}

async function savedPosition() {
  try {
    const body = await api(`${jobPath}/position`);
    return Number(body.position) || 0;
  } catch {
    return 0;
  }
}

function seekOnce(seconds) {
  return new Promise((resolve) => {
    const apply = () => {
      const duration = video.duration;
      const fits = !Number.isFinite(duration) || seconds < duration - RESUME_MARGIN;
      if (seconds > RESUME_MARGIN && fits) video.currentTime = seconds;
      resolve();
    };
    if (video.readyState >= HTMLMediaElement.HAVE_METADATA) apply();
    else video.addEventListener("loadedmetadata", apply, { once: true });
  });
}

async function play() {
  try {
    await video.play();
  } catch (error) {
    if (error && error.name === "NotAllowedError") {
      setBuffering(false);
      osd("Press play (or Space) to start");
    }
  }
}

async function start() {
  setBuffering(true);
  try {
    const [stream, position] = await Promise.all([streamInfo(), savedPosition()]);
    await attach(stream);
    const seeked = seekOnce(position);
    play();
    await seeked;
    if (position > RESUME_MARGIN) osd(`Resuming at ${clock(position)}`);
  } catch (error) {
    setBuffering(false);
    showError(error.message);
  } finally {
    resumed = true;
  }
}

// A progressive URL carries a signed token that expires after some hours, and a network
// error can end a long download; fetch a fresh URL and carry on where playback was.
async function reload() {
  if (reloads >= 3) {
    const why = hadMetadata
      ? "the stream could not be read"
      : "this browser may not play this file's format, or the stream could not be read";
    setBuffering(false);
    showError(`Playback stopped: ${why}. Reload the page to try again.`);
    return;
  }
  reloads += 1;
  const at = video.currentTime;
  try {
    const stream = await streamInfo();
    await attach(stream);
    await seekOnce(at);
    play();
  } catch (error) {
    showError(error.message);
  }
}

// ------------------------------------------------------------------ position

async function savePosition({ keepalive = false } = {}) {
  if (!resumed) return;
  const at = video.currentTime;
  if (!Number.isFinite(at) || (lastSaved !== null && Math.abs(at - lastSaved) < 0.5)) return;
  lastSaved = at;
  try {
    await api(`${jobPath}/position`, { method: "PUT", body: { position: at }, keepalive });
  } catch {
    lastSaved = null; // the next save tries again
  }
}

// ------------------------------------------------------------------ keyboard

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else (box.requestFullscreen ? box.requestFullscreen() : Promise.reject()).catch(() => {});
}

function seekBy(seconds) {
  const duration = Number.isFinite(video.duration) ? video.duration : Infinity;
  video.currentTime = Math.min(Math.max(video.currentTime + seconds, 0), duration);
  osd(`${seconds > 0 ? "+" : "−"}${Math.abs(seconds)} s · ${clock(video.currentTime)}`);
}

function changeVolume(delta) {
  video.muted = false;
  video.volume = Math.round(Math.min(Math.max(video.volume + delta, 0), 1) * 10) / 10;
  osd(`Volume ${Math.round(video.volume * 100)}%`);
}

function onKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (target instanceof HTMLElement && target.closest("input, textarea, select")) return;
  switch (event.key) {
    case " ":
    case "k":
      if (target instanceof HTMLElement && target.closest("a, button")) return;
      if (video.paused) play();
      else video.pause();
      break;
    case "ArrowLeft":
      seekBy(-SEEK_STEP);
      break;
    case "ArrowRight":
      seekBy(SEEK_STEP);
      break;
    case "ArrowUp":
      changeVolume(VOLUME_STEP);
      break;
    case "ArrowDown":
      changeVolume(-VOLUME_STEP);
      break;
    case "f":
    case "F":
      toggleFullscreen();
      break;
    default:
      return;
  }
  // The browser's own controls would act on the same key a second time.
  event.preventDefault();
  event.stopPropagation();
}

// ------------------------------------------------------------------ wiring

if (video && jobId) {
  for (const name of ["waiting", "seeking", "stalled"]) {
    video.addEventListener(name, () => setBuffering(true));
  }
  for (const name of ["playing", "seeked", "canplay"]) {
    video.addEventListener(name, () => setBuffering(false));
  }
  // "stalled" also fires while enough is buffered to play on; time moving says it is not.
  video.addEventListener("timeupdate", () => {
    if (!video.paused && !video.seeking && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA) {
      setBuffering(false);
    }
  });
  video.addEventListener("loadedmetadata", () => {
    hadMetadata = true;
  });
  video.addEventListener("error", () => {
    if (!hls) reload();
  });
  video.addEventListener("pause", () => savePosition());
  video.addEventListener("seeked", () => {
    if (video.paused) savePosition();
  });
  setInterval(() => {
    if (!video.paused) savePosition();
  }, SAVE_EVERY);
  window.addEventListener("pagehide", () => savePosition({ keepalive: true }));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") savePosition({ keepalive: true });
  });
  window.addEventListener("keydown", onKey, { capture: true });
  video.focus();
  start();
}
