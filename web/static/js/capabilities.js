// What this browser can really play, measured rather than guessed from its name: the answers of
// MediaSource.isTypeSupported (what hls.js can feed it as fMP4 or WebM segments) and of
// canPlayType (what a <video src> plays as a whole file), for the codecs that releases carry.
// The server turns this into a plan (direct play, remux, audio to AAC, or a transcode); the
// keys are transcode/capabilities.py's, so both sides must change together.

export const CAPABILITIES_VERSION = 1;

// Codec key -> the codecs parameter for an MP4 (or WebM) type.
const VIDEO = {
  h264_baseline: "avc1.42E01E",
  h264_main: "avc1.4D401F",
  h264_high: "avc1.640028",
  h264_high10: "avc1.6E0028",
  hevc_main_hvc1: "hvc1.1.6.L120.90",
  hevc_main_hev1: "hev1.1.6.L120.90",
  hevc_main10_hvc1: "hvc1.2.4.L120.90",
  hevc_main10_hev1: "hev1.2.4.L120.90",
  av1: "av01.0.08M.08",
  av1_10: "av01.0.08M.10",
  vp9: "vp09.00.40.08",
  vp9_10: "vp09.02.40.10",
};
const AUDIO = {
  aac: "mp4a.40.2",
  mp3: "mp4a.6B",
  ac3: "ac-3",
  eac3: "ec-3",
  opus: "opus",
  flac: "flac",
};
// Codecs only asked about in WebM.
const WEBM_ONLY = { vp8: "vp8", vorbis: "vorbis" };
const CONTAINERS = {
  mp4: "video/mp4",
  webm: "video/webm",
  mkv: "video/x-matroska",
  matroska: "video/matroska",
};
const HLS_TYPES = ["application/vnd.apple.mpegurl", "application/x-mpegURL"];

function mediaSourceClass() {
  return window.ManagedMediaSource || window.MediaSource || window.WebKitMediaSource || null;
}

function typeFor(key, codec) {
  const kind = key in AUDIO ? "audio" : "video";
  const container = key in WEBM_ONLY ? "webm" : "mp4";
  return `${kind}/${container}; codecs="${codec}"`;
}

function supportedKeys(test) {
  const keys = [];
  for (const table of [VIDEO, AUDIO, WEBM_ONLY]) {
    for (const [key, codec] of Object.entries(table)) {
      try {
        if (test(typeFor(key, codec))) keys.push(key);
      } catch {
        // A browser that throws on a type does not play it.
      }
    }
  }
  return keys;
}

function maxChannels() {
  try {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return 2;
    const context = new Context();
    const channels = context.destination.maxChannelCount || 2;
    if (context.close) context.close().catch(() => {});
    return channels;
  } catch {
    return 2;
  }
}

/**
 * The capability report the server parses: plain JSON, small, the same keys on every browser.
 * `mse` lists codecs Media Source Extensions accept (fMP4 segments through hls.js), `file` the
 * codecs a <video> plays from a whole MP4/WebM file, `containers` the file types it opens.
 */
export function probeCapabilities() {
  const video = document.createElement("video");
  const canPlay = (type) => {
    const answer = video.canPlayType(type);
    return answer === "probably" || answer === "maybe";
  };
  const MediaSource = mediaSourceClass();
  const mse = MediaSource && typeof MediaSource.isTypeSupported === "function";
  const containers = Object.entries(CONTAINERS)
    .filter(([, type]) => canPlay(type))
    .map(([key]) => (key === "matroska" ? "mkv" : key));
  return {
    version: CAPABILITIES_VERSION,
    mse: Boolean(mse),
    native_hls: HLS_TYPES.some((type) => canPlay(type)),
    mse_codecs: mse ? supportedKeys((type) => MediaSource.isTypeSupported(type)) : [],
    file_codecs: supportedKeys(canPlay),
    containers: [...new Set(containers)],
    max_channels: maxChannels(),
  };
}
