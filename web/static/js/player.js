// The player: the job's stream in a full-window <video> (through the vendored hls.js when the
// stream is HLS), resuming where it was left and saving the position as it plays, with the
// keyboard shortcuts of most players and a buffering sign while a seek waits for the download.
// The server plans the stream from what this browser measured it plays and says why (shown in
// the bar: "converting sound: AC3 → AAC"); subtitles come as WebVTT <track>s, and the chosen
// sound and subtitle languages are the household's preference, kept by the server.

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
const planBox = document.getElementById("plan");
const audioSelect = document.getElementById("audio-track");
const subtitleSelect = document.getElementById("subtitle-track");
const jobId = video ? video.dataset.jobId : null;
const jobPath = jobId ? `/jobs/${encodeURIComponent(jobId)}` : "";

let hls = null;
let resumed = false; // no position is saved before the saved one was applied
let lastSaved = null;
let reloads = 0;
let hadMetadata = false;
let osdTimer = null;
let current = null; // the /stream answer being played
let choice = {}; // ?audio= and ?burn= asked for by the person
let shownTrack = null; // the id of the subtitle track the player itself last showed
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
      const params = new URLSearchParams({ capabilities });
      for (const [key, value] of Object.entries(choice)) {
        if (value !== null && value !== undefined) params.set(key, value);
      }
      const query = `?${params}`;
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

// hls.js waits for segments that ffmpeg makes while the film downloads: a first byte may take
// a while after a seek, but an error answer is final after one retry (its text is then shown).
const HLS_CONFIG = {
  backBufferLength: 60,
  fragLoadPolicy: {
    default: {
      maxTimeToFirstByteMs: 60000,
      maxLoadTimeMs: 120000,
      timeoutRetry: { maxNumRetry: 2, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: 1, retryDelayMs: 1000, maxRetryDelayMs: 4000 },
    },
  },
};

// What the server said went wrong with a request hls.js gave up on: its JSON error text.
async function whyFailed(url) {
  if (!url) return null;
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.ok) return null;
    const body = await response.json();
    return typeof body.error === "string" ? body.error : null;
  } catch {
    return null;
  }
}

async function hlsFailed(data) {
  const url = (data.frag && data.frag.url) || data.url || (data.context && data.context.url);
  const why = await whyFailed(url);
  setBuffering(false);
  showError(`Playback failed: ${why || data.details || "unknown error"}.`);
}

async function attachHls(url) {
  await loadScript(video.dataset.hls);
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    hls = new Hls(HLS_CONFIG);
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && reloads < 3) {
        reloads += 1;
        hls.recoverMediaError();
      } else {
        hlsFailed(data);
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

// ------------------------------------------------------------------ tracks and plan

function trackLabel(track) {
  const name = track.title || track.language || `Track ${track.index ?? track.id}`;
  return track.title && track.language ? `${track.title} (${track.language})` : name;
}

function sameLanguage(a, b) {
  if (!a || !b) return false;
  const short = (tag) => tag.toLowerCase().split(/[-_]/)[0];
  return short(a) === short(b) || LANGUAGE_ALIASES[short(a)] === short(b) || LANGUAGE_ALIASES[short(b)] === short(a);
}
// The 639-2 codes files carry for the languages a household most likely picks.
const LANGUAGE_ALIASES = {
  eng: "en", ger: "de", deu: "de", fre: "fr", fra: "fr", spa: "es", ita: "it", dut: "nl",
  nld: "nl", por: "pt", rus: "ru", jpn: "ja", chi: "zh", zho: "zh", kor: "ko", swe: "sv",
  dan: "da", nor: "no", fin: "fi", pol: "pl",
};

function showPlan(stream) {
  if (!planBox) return;
  planBox.textContent = [stream.description, ...(stream.reasons || [])].filter(Boolean).join(" · ");
  planBox.dataset.plan = stream.plan || "";
}

function option(value, label, selected) {
  const el = document.createElement("option");
  el.value = value;
  el.textContent = label;
  el.selected = selected;
  return el;
}

function fillAudio(stream) {
  if (!audioSelect) return;
  const tracks = stream.audio_tracks || [];
  audioSelect.replaceChildren(
    ...tracks.map((t) => option(String(t.index), `${trackLabel(t)} · ${t.codec.toUpperCase()}${t.channels ? ` ${t.channels}ch` : ""}`, t.selected)),
  );
  audioSelect.hidden = tracks.length < 2;
}

// Subtitles are text tracks that the player fills itself, cue by cue as the server's WebVTT
// arrives (it is made while the film downloads). A <track src> would do the same loading, but
// Chromium holds playback back until such a track has loaded completely.
const textTracks = new Map(); // subtitle id -> { track, url, loading }

function subtitleTrack(t) {
  let entry = textTracks.get(t.id);
  if (!entry) {
    const track = video.addTextTrack("subtitles", trackLabel(t), t.language || "");
    track.mode = "disabled";
    entry = { track, url: t.url, loading: false };
    textTracks.set(t.id, entry);
  }
  entry.url = t.url; // a fresh token
  return entry;
}

function vttTime(text) {
  const parts = text.trim().split(":").map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

// Adds the complete cues at the start of `text` to `track`; returns what is left over.
function takeCues(text, track) {
  const blocks = text.replace(/\r\n?/g, "\n").split(/\n{2,}/);
  const rest = blocks.pop();
  for (const block of blocks) {
    const lines = block.split("\n");
    const at = lines.findIndex((line) => line.includes("-->"));
    if (at < 0) continue; // the header, a NOTE or a STYLE block
    const [start, end] = lines[at].split("-->");
    const body = lines.slice(at + 1).join("\n");
    try {
      track.addCue(new VTTCue(vttTime(start), vttTime(end.trim().split(/\s+/)[0]), body));
    } catch {
      // A cue the browser refuses is skipped, not fatal.
    }
  }
  return rest;
}

async function loadCues(entry) {
  if (entry.loading) return;
  entry.loading = true;
  try {
    const response = await fetch(entry.url, { credentials: "same-origin" });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = takeCues(buffer + value, entry.track);
    }
    takeCues(`${buffer}\n\n`, entry.track);
  } catch {
    entry.loading = false; // asked for again when it is next shown
  }
}

// Which text track shows: the person's choice for this film, else the household's
// language, else what the file marks as default.
function attachSubtitles(stream) {
  const texts = (stream.subtitles || []).filter((t) => t.kind === "text" && t.url);
  const wanted = stream.preferences ? stream.preferences.subtitle_language : null;
  const burning = choice.burn !== undefined && choice.burn !== null ? String(choice.burn) : null;
  let showing = null;
  if (choice.subtitle) showing = texts.find((t) => t.id === choice.subtitle) || null;
  else if (wanted && wanted !== "off") showing = texts.find((t) => sameLanguage(t.language, wanted)) || null;
  else if (!wanted) showing = texts.find((t) => t.default) || null;
  if (burning) showing = null;
  shownTrack = showing ? showing.id : null;
  for (const t of texts) {
    const entry = subtitleTrack(t);
    entry.track.mode = showing && t.id === showing.id ? "showing" : "disabled";
    if (entry.track.mode === "showing") loadCues(entry);
  }
  if (subtitleSelect) {
    const images = (stream.subtitles || []).filter((t) => t.kind === "image");
    subtitleSelect.replaceChildren(
      option("off", "Subtitles off", !showing && !burning),
      ...texts.map((t) => option(t.id, trackLabel(t), Boolean(showing && showing.id === t.id))),
      ...images.map((t) => option(`burn:${t.index}`, `${trackLabel(t)} (picture: converts the video)`, burning === String(t.index))),
    );
    subtitleSelect.hidden = texts.length + images.length === 0;
  }
}

async function savePreference(body) {
  try {
    await api("/preferences", { method: "PUT", body });
  } catch {
    // A preference that is not saved only costs a choice next time.
  }
}

// A track shown from the browser's own menu (or the select) gets its cues and is the
// household's new preference.
function onTextTracksChanged() {
  if (!current) return;
  let id = null;
  for (const [key, entry] of textTracks) {
    if (entry.track.mode === "showing" || entry.track.mode === "hidden") loadCues(entry);
    if (entry.track.mode === "showing" && id === null) id = key;
  }
  if (id === shownTrack) return; // what the player set itself
  shownTrack = id;
  const track = id ? (current.subtitles || []).find((t) => t.id === id) : null;
  if (subtitleSelect) subtitleSelect.value = track ? track.id : "off";
  savePreference({ subtitle_language: track ? track.language || null : "off" });
}

async function switchStream(changes) {
  const at = video.currentTime;
  choice = { ...choice, ...changes };
  setBuffering(true);
  try {
    const stream = await streamInfo();
    await attach(stream);
    await seekOnce(at, { always: true });
    play();
  } catch (error) {
    setBuffering(false);
    showError(error.message);
  }
}

function onAudioChosen() {
  const index = Number(audioSelect.value);
  const track = (current.audio_tracks || []).find((t) => t.index === index);
  if (track && track.language) savePreference({ audio_language: track.language });
  switchStream({ audio: index });
}

function onSubtitleChosen() {
  const value = subtitleSelect.value;
  if (value.startsWith("burn:")) {
    switchStream({ burn: value.slice(5), subtitle: null });
    return;
  }
  const burning = choice.burn !== undefined && choice.burn !== null;
  choice = { ...choice, subtitle: value === "off" ? null : value, burn: null };
  for (const [id, entry] of textTracks) {
    entry.track.mode = id === value ? "showing" : "disabled";
  }
  if (burning) switchStream({});
  else onTextTracksChanged();
}

async function attach(stream) {
  if (hls) {
    hls.destroy();
    hls = null;
  }
  current = stream;
  showPlan(stream);
  fillAudio(stream);
  attachSubtitles(stream);
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

function seekOnce(seconds, { always = false } = {}) {
  return new Promise((resolve) => {
    const apply = () => {
      const duration = video.duration;
      const fits = !Number.isFinite(duration) || seconds < duration - RESUME_MARGIN;
      if (always ? seconds > 0 : seconds > RESUME_MARGIN && fits) video.currentTime = seconds;
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
  video.textTracks.addEventListener("change", onTextTracksChanged);
  if (audioSelect) audioSelect.addEventListener("change", onAudioChosen);
  if (subtitleSelect) subtitleSelect.addEventListener("change", onSubtitleChosen);
  video.focus();
  start();
}
