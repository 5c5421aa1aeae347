// Home: the active downloads move while the page is open.

import { field } from "./dom.js";
import { ACTIVE, eta, percent, speed, stage } from "./format.js";
import { jobElement, pollJobs } from "./jobs.js";

const list = document.getElementById("active-jobs");
const empty = document.getElementById("no-downloads");

function update(item, job) {
  item.dataset.status = job.status;
  const bar = item.querySelector("progress");
  if (bar) bar.value = job.progress;
  field(item, "stage", stage(job));
  field(item, "percent", percent(job.progress));
  field(item, "speed", ACTIVE.has(job.status) ? speed(job.speed_bps) : "—");
  field(item, "eta", ACTIVE.has(job.status) ? eta(job.eta_seconds) : "—");
}

if (list) {
  pollJobs((jobs) => {
    const byId = new Map(jobs.map((job) => [job.job_id, job]));
    for (const item of list.querySelectorAll(".job[data-job-id]")) {
      const job = byId.get(item.dataset.jobId);
      if (job) update(item, job);
    }
    for (const job of jobs) {
      if (ACTIVE.has(job.status) && !list.querySelector(`[data-job-id="${CSS.escape(job.job_id)}"]`)) {
        const item = jobElement("job-item", job);
        update(item, job);
        list.append(item);
      }
    }
    if (empty) empty.hidden = list.children.length > 0;
  });
}
