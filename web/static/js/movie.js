// Movie page: Watch (the best release, chosen by the server), the releases table to choose
// one by hand, and the movie's current job.

import { api, page } from "./api.js";
import { probeCapabilities } from "./capabilities.js";
import { h, say, field } from "./dom.js";
import { ACTIVE, age, percent, size, stage } from "./format.js";
import { followJob } from "./jobs.js";

const article = document.getElementById("movie");
const movieId = article ? article.dataset.movieId : null;
const watch = document.getElementById("watch");
const quality = document.getElementById("quality");
const watchError = document.getElementById("watch-error");
const table = document.getElementById("releases");
const releasesStatus = document.getElementById("releases-status");
const jobStatus = document.getElementById("job-status");
const DEFAULT_QUALITY = "1080p";

// The server prefers 1080p unless told otherwise; say so only when the person chose.
function withQuality(body) {
  return quality.value === DEFAULT_QUALITY ? body : { ...body, quality_preference: quality.value };
}

function jobPage(jobId) {
  return page(`job/${encodeURIComponent(jobId)}`);
}

function busy(on) {
  for (const button of document.querySelectorAll("#watch, #releases button.pick")) {
    button.disabled = on;
  }
}

/** POST fetch and go to the job's page; errors are shown beside the Watch button. */
async function fetchMovie(body) {
  busy(true);
  say(watchError, "");
  try {
    // An auto pick ranks for this browser too, as the list below does.
    const params = new URLSearchParams({ capabilities: JSON.stringify(probeCapabilities()) });
    const answer = await api(`/movies/${movieId}/fetch?${params}`, { method: "POST", body });
    location.assign(jobPage(answer.job_id));
  } catch (error) {
    say(watchError, error.message);
    busy(false);
    watchError.scrollIntoView({ block: "nearest" });
  }
}

function cell(text, className) {
  return h("td", { class: className }, text === null || text === undefined || text === "" ? "—" : text);
}

function row(release) {
  const reasons = release.reasons || [];
  const tr = h(
    "tr",
    {
      class: release.excluded ? "release excluded" : "release",
      dataset: { releaseId: release.release_id },
    },
    h(
      "td",
      { class: "release-name" },
      h("span", { class: "release-title" }, release.title),
      h("span", { class: "muted small" }, ` ${release.indexer}`),
    ),
    cell(release.quality, "quality"),
    cell(release.source, "source"),
    cell(release.codec, "codec"),
    cell(release.size ? size(release.size) : null, "size"),
    cell(release.group, "group"),
    cell(age(release.pub_date), "age"),
    h("td", { class: "reasons" }, reasons.length ? h("ul", {}, reasons.map((r) => h("li", {}, r))) : "—"),
    h(
      "td",
      {},
      h(
        "button",
        {
          type: "button",
          class: "pick",
          "aria-label": `Download ${release.title}`,
          title: release.excluded ? "Matinee would not choose this one: see why" : null,
        },
        "Pick",
      ),
    ),
  );
  tr.querySelector("button.pick").addEventListener("click", () => {
    if (release.excluded && !confirm(`Matinee would not choose this release: ${reasons[0] || ""}\n\nDownload it anyway?`)) {
      return;
    }
    fetchMovie(withQuality({ mode: "manual", release_id: release.release_id }));
  });
  return tr;
}

let loading = null;

async function loadReleases() {
  if (loading) loading.abort();
  const controller = new AbortController();
  loading = controller;
  const body = table.tBodies[0];
  say(releasesStatus, "Looking for releases…");
  try {
    // Ranked for this browser: what it measured it plays decides what "plays directly" means.
    const params = new URLSearchParams({
      quality_preference: quality.value,
      capabilities: JSON.stringify(probeCapabilities()),
    });
    const found = await api(`/movies/${movieId}/releases?${params}`, { signal: controller.signal });
    body.replaceChildren(...found.releases.map(row));
    const problems = Object.entries(found.indexer_errors || {}).map(([name, why]) => `${name}: ${why}`);
    const count = found.releases.length;
    let text = count
      ? `${count} release${count === 1 ? "" : "s"}, best first.`
      : "No releases found for this movie.";
    if (problems.length) text += ` Some indexers did not answer (${problems.join("; ")}).`;
    say(releasesStatus, text);
  } catch (error) {
    if (error.name === "AbortError") return;
    body.replaceChildren();
    say(releasesStatus, `Cannot list releases: ${error.message}`);
  } finally {
    if (loading === controller) loading = null;
  }
}

function followMovieJob() {
  const link = jobStatus ? jobStatus.querySelector("a[data-job-id]") : null;
  if (!link) return;
  followJob(link.dataset.jobId, (job) => {
    field(link, "stage", stage(job));
    field(link, "percent", percent(job.progress));
    if (!ACTIVE.has(job.status)) {
      const pct = link.querySelector('[data-field="percent"]');
      if (pct) pct.textContent = "";
    }
  });
}

if (article && watch && table) {
  watch.addEventListener("click", () => fetchMovie(withQuality({ mode: "auto" })));
  quality.addEventListener("change", loadReleases);
  loadReleases();
  followMovieJob();
}
