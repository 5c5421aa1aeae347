// Job page: stage, progress, speed and time left follow the job's event stream; Play now
// lights up the moment the job is playable, without a reload.

import { api, page } from "./api.js";
import { probeCapabilities } from "./capabilities.js";
import { h, say } from "./dom.js";
import {
  STATUS,
  canPlay,
  eta,
  expiryText,
  mirrorText,
  percent,
  relative,
  size,
  speed,
  stage,
} from "./format.js";
import { followJob } from "./jobs.js";

const box = document.getElementById("job");
const $ = (id) => document.getElementById(id);

// The job's history ("What happened"): fetched again whenever the job moves on to another
// stage or another release, so the list says what the runner did without a reload.
let logKey = null;

async function refreshLog(job) {
  const key = `${job.status}/${job.attempt}/${job.release_title}/${job.playable}`;
  if (key === logKey) return;
  logKey = key;
  try {
    const { events } = await api(`/jobs/${encodeURIComponent(job.job_id)}/log`);
    $("job-log-entries").replaceChildren(
      ...events.map((e) =>
        h("li", { dataset: { kind: e.kind } }, h("time", { datetime: e.at }, relative(e.at)), " ", e.message),
      ),
    );
  } catch {
    logKey = null; // try again with the next snapshot
  }
}

function render(job) {
  refreshLog(job);
  box.dataset.status = job.status;
  $("stage").textContent = stage(job);
  $("progress").value = job.progress;
  $("progress").textContent = percent(job.progress);
  $("percent").textContent = percent(job.progress);
  $("bytes").textContent = `${job.bytes_done ? size(job.bytes_done) : "0 MB"} of ${size(job.bytes_total)}`;
  const running = job.status === STATUS.DOWNLOADING || job.status === STATUS.QUEUED;
  $("speed").textContent = running ? speed(job.speed_bps) : "—";
  $("eta").textContent = running ? eta(job.eta_seconds) : "—";
  if (job.release_title && job.release_title !== $("job-title").textContent) {
    $("release-title").textContent = job.release_title;
    $("release-title").hidden = false;
  }
  if (job.status !== STATUS.DOWNLOADING && job.status !== STATUS.PREPARING) say($("note"), "");

  const play = $("play-now");
  const playable = canPlay(job);
  play.classList.toggle("disabled", !playable);
  if (playable) play.removeAttribute("aria-disabled");
  else play.setAttribute("aria-disabled", "true");
  $("play-hint").hidden = playable || job.status === STATUS.ERROR || job.status === STATUS.DELETED;

  const mirror = mirrorText(job);
  $("mirror").textContent = mirror;
  $("mirror").hidden = !mirror;
  $("expiry").textContent = expiryText(job);
  $("keep").hidden = job.status === STATUS.DELETED || !job.expires_at;

  const error = $("error");
  if (job.status === STATUS.ERROR) {
    $("error-message").textContent = job.error_message || "The download failed.";
    error.hidden = false;
  } else {
    error.hidden = true;
  }
  document.title = `${stage(job)}: ${$("job-title").textContent} · Matinee`;
}

function connection(state) {
  const text = {
    live: "",
    reconnecting: "Connection lost; reconnecting…",
    stopped: "",
  }[state];
  $("live-state").textContent = text || "";
}

if (box) {
  const jobId = box.dataset.jobId;
  $("play-now").addEventListener("click", (event) => {
    if ($("play-now").getAttribute("aria-disabled") === "true") event.preventDefault();
  });
  $("keep").addEventListener("click", async () => {
    $("keep").disabled = true;
    try {
      render(await api(`/jobs/${encodeURIComponent(jobId)}/keep`, { method: "POST" }));
    } catch (error) {
      $("expiry").textContent = error.message;
    } finally {
      $("keep").disabled = false;
    }
  });
  const next = $("next-release");
  if (next) {
    next.addEventListener("click", async () => {
      next.disabled = true;
      try {
        const params = new URLSearchParams({ capabilities: JSON.stringify(probeCapabilities()) });
        const answer = await api(`/movies/${next.dataset.movieId}/fetch?${params}`, {
          method: "POST",
          body: { mode: "auto" },
        });
        location.assign(page(`job/${encodeURIComponent(answer.job_id)}`));
      } catch (error) {
        $("error-message").textContent = error.message;
        next.disabled = false;
      }
    });
  }
  followJob(jobId, render, connection);
}
