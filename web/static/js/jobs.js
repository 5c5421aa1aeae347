// Following jobs as they change: one job over its Server-Sent Events stream (reconnecting
// when the stream drops), or the whole list by polling (one request, however many jobs,
// which keeps browsers within their per-host connection limit).

import { api, apiBase, page } from "./api.js";
import { field } from "./dom.js";
import { atRest } from "./format.js";

const FIRST_RETRY = 1000;
const MAX_RETRY = 30000;

/**
 * Call onJob(job) with each snapshot of the job until it reaches a final state.
 * onState("live" | "reconnecting" | "stopped") reports the connection for the page to show.
 * Returns { stop }.
 */
export function followJob(jobId, onJob, onState = () => {}) {
  const url = `${apiBase}/jobs/${encodeURIComponent(jobId)}/events`;
  let source = null;
  let stopped = false;
  let retry = FIRST_RETRY;
  let timer = null;

  function deliver(job) {
    if (stopped) return;
    onJob(job);
    if (atRest(job)) stop();
  }

  function stop() {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    if (source) source.close();
    onState("stopped");
  }

  // While the stream is down, one plain request keeps the page current.
  async function refresh() {
    try {
      deliver(await api(`/jobs/${encodeURIComponent(jobId)}`));
    } catch (error) {
      if (error.status === 404) stop();
    }
  }

  function open() {
    if (stopped) return;
    source = new EventSource(url);
    source.addEventListener("open", () => {
      retry = FIRST_RETRY;
      onState("live");
    });
    source.addEventListener("job", (event) => {
      let job;
      try {
        job = JSON.parse(event.data);
      } catch {
        return;
      }
      deliver(job);
    });
    source.addEventListener("error", () => {
      if (stopped) return;
      onState("reconnecting");
      refresh();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, say after a restart); try again ourselves.
        source.close();
        timer = setTimeout(open, retry);
        retry = Math.min(retry * 2, MAX_RETRY);
      }
      // Otherwise the browser reconnects by itself.
    });
  }

  // A laptop waking from sleep: the old connection may be dead without an error.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !stopped) {
      refresh();
      if (source && source.readyState === EventSource.CLOSED) open();
    }
  });

  open();
  return { stop };
}

/** Call onJobs(jobs) every interval ms (and now) with the API's job list; returns { stop }. */
export function pollJobs(onJobs, onError = () => {}, interval = 2000) {
  let timer = null;
  let stopped = false;
  async function tick() {
    try {
      const body = await api("/jobs");
      onJobs(body.jobs);
      onError("");
    } catch (error) {
      onError(error.message);
    }
    if (!stopped) timer = setTimeout(tick, document.hidden ? interval * 5 : interval);
  }
  tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * A new element for a job, cloned from the page's <template id=templateId>: the server renders
 * that blank from the same Jinja macro as the rows it sends, so there is one markup.
 */
export function jobElement(templateId, job) {
  const el = document.getElementById(templateId).content.firstElementChild.cloneNode(true);
  el.dataset.jobId = job.job_id;
  el.dataset.status = job.status;
  for (const link of el.querySelectorAll("[data-link]")) {
    link.href = page(`${link.dataset.link}/${encodeURIComponent(job.job_id)}`);
  }
  const title = job.release_title || "Finding a release…";
  field(el, "title", title);
  for (const bar of el.querySelectorAll("progress")) bar.setAttribute("aria-label", `Progress of ${title}`);
  return el;
}
