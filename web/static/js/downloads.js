// Downloads: every job's progress kept current, Cancel for running ones and Delete for
// finished ones (both DELETE /jobs/{id}: the job stops and its files go).

import { api } from "./api.js";
import { h, say, field } from "./dom.js";
import {
  ACTIVE,
  STATUS,
  canPlay,
  mirrorText,
  percent,
  relative,
  size,
  speed,
  stage,
} from "./format.js";
import { jobElement, pollJobs } from "./jobs.js";

const table = document.getElementById("jobs");
const errorBox = document.getElementById("downloads-error");
const empty = document.getElementById("no-jobs");

function actions(row, job) {
  const cellEl = row.querySelector(".row-actions");
  const play = cellEl.querySelector("a.play");
  if (play) play.hidden = !canPlay(job);
  const want = ACTIVE.has(job.status) ? "cancel" : "delete";
  const current = cellEl.querySelector("button.cancel, button.delete");
  if (current && current.classList.contains(want)) return;
  const button = h("button", { type: "button", class: want }, want === "cancel" ? "Cancel" : "Delete");
  if (current) current.replaceWith(button);
  else cellEl.append(button);
}

function update(row, job) {
  row.dataset.status = job.status;
  const bar = row.querySelector("progress");
  if (bar) bar.value = job.progress;
  field(row, "stage", stage(job));
  field(row, "percent", percent(job.progress));
  field(row, "size", size(job.bytes_total));
  field(row, "speed", ACTIVE.has(job.status) ? speed(job.speed_bps) : "—");
  field(row, "expires", relative(job.expires_at));
  field(row, "mirror", mirrorText(job));
  field(
    row,
    "local",
    !job.local ? "local copy deleted" : job.local_expires_at ? `local copy ${relative(job.local_expires_at)}` : "",
  );
  const keep = row.querySelector("button.keep");
  if (keep) keep.hidden = job.status === STATUS.DELETED || !job.expires_at;
  actions(row, job);
}

async function remove(row, cancelling) {
  const title = row.querySelector('[data-field="title"]').textContent.trim();
  const question = cancelling
    ? `Cancel “${title}”? What it downloaded so far is deleted.`
    : `Delete “${title}” now? It cannot be played afterwards.`;
  if (!confirm(question)) return;
  for (const button of row.querySelectorAll("button")) button.disabled = true;
  try {
    await api(`/jobs/${encodeURIComponent(row.dataset.jobId)}`, { method: "DELETE" });
    row.remove();
    say(errorBox, "");
    if (empty) empty.hidden = table.tBodies[0].rows.length > 0;
  } catch (error) {
    say(errorBox, error.message);
    for (const button of row.querySelectorAll("button")) button.disabled = false;
  }
}

if (table) {
  const body = table.tBodies[0];
  table.addEventListener("click", async (event) => {
    const keep = event.target.closest("button.keep");
    if (keep) {
      const row = keep.closest("tr.job");
      keep.disabled = true;
      try {
        update(row, await api(`/jobs/${encodeURIComponent(row.dataset.jobId)}/keep`, { method: "POST" }));
        say(errorBox, "");
      } catch (error) {
        say(errorBox, error.message);
      } finally {
        keep.disabled = false;
      }
      return;
    }
    const button = event.target.closest("button.cancel, button.delete");
    if (!button) return;
    remove(button.closest("tr.job"), button.classList.contains("cancel"));
  });
  pollJobs(
    (jobs) => {
      const known = new Map([...body.rows].map((row) => [row.dataset.jobId, row]));
      for (const job of jobs) {
        let row = known.get(job.job_id);
        if (job.status === STATUS.DELETED) {
          if (row) row.remove();
          continue;
        }
        if (!row) {
          row = jobElement("download-row", job);
          body.prepend(row);
        }
        update(row, job);
      }
      if (empty) empty.hidden = body.rows.length > 0;
    },
    (message) => say(errorBox, message),
  );
}
