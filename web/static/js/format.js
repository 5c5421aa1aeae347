// Numbers and job statuses as a person reads them; the same wording as the server's pages.

// The job lifecycle comes from the server (server/jobs/lifecycle.py), rendered into every
// page as JSON by base.html: one table, not a copy of it.
const LIFECYCLE = JSON.parse(document.getElementById("matinee-lifecycle")?.textContent || "{}");

/** The statuses by name: STATUS.ERROR === "error", and so on. */
export const STATUS = Object.freeze(
  Object.fromEntries((LIFECYCLE.statuses || []).map((s) => [s.toUpperCase(), s])),
);
export const ACTIVE = new Set(LIFECYCLE.active || []);
export const FINAL = new Set(LIFECYCLE.final || []);
const UNPLAYABLE = new Set(LIFECYCLE.unplayable || []);
const MIRROR_MOVING = new Set(LIFECYCLE.mirror_moving || []);

/** What a person reads for a job's status ("Trying another release" for a retry). */
export function stage(job) {
  if (job.status === STATUS.QUEUED && job.attempt > 1) return LIFECYCLE.retry_label;
  return (LIFECYCLE.labels || {})[job.status] || job.status;
}

/** Nothing more happens to the job by itself: its status is final and its upload is over. */
export function atRest(job) {
  if (job.status === STATUS.DELETED) return true;
  return FINAL.has(job.status) && !(job.mirror && MIRROR_MOVING.has(job.mirror.state));
}

/** Where the job's copy in R2 stands, in words ("" while R2 has no part in it). */
export function mirrorText(job) {
  const m = job.mirror;
  if (!m) return "";
  const label = (LIFECYCLE.mirror_labels || {})[m.state] || m.state;
  if (m.state === "mirroring" && m.bytes_total) {
    return `${label}: ${percent((100 * m.bytes_done) / m.bytes_total)} (${size(m.bytes_done)} of ${size(m.bytes_total)})`;
  }
  if (m.state === "failed" && m.error) return `${label}: ${m.error}`;
  return label;
}

/** When the movie goes, locally and in R2, in words ("" when no timer runs). */
export function expiryText(job) {
  if (job.status === STATUS.DELETED) return "";
  const parts = [];
  if (job.expires_at) parts.push(`Deleted ${relative(job.expires_at)}`);
  if (!job.local) parts.push("local copy deleted: it plays from R2");
  else if (job.local_expires_at) parts.push(`local copy deleted ${relative(job.local_expires_at)} (then it plays from R2)`);
  return parts.join("; ");
}

/** Whether the player may open the job now. */
export function canPlay(job) {
  return Boolean(job.playable) && !UNPLAYABLE.has(job.status);
}

/** Decimal units, as indexers and the server show them: "1.2 GB", "700 MB". */
export function size(bytes) {
  if (!bytes) return "—";
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${Math.round(bytes / 1e6)} MB`;
  return `${Math.round(bytes / 1e3)} kB`;
}

export function speed(bps) {
  return bps ? `${size(bps)}/s` : "—";
}

export function eta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) {
    return "—";
  }
  if (seconds < 60) return "less than a minute left";
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} min left`;
  return `${(seconds / 3600).toFixed(1)} h left`;
}

export function percent(progress) {
  return `${Math.round(progress || 0)}%`;
}

/** "in 3 h", "5 min ago" for an ISO date; "—" without one. */
export function relative(iso) {
  if (!iso) return "—";
  const delta = (Date.parse(iso) - Date.now()) / 1000;
  if (!Number.isFinite(delta)) return "—";
  const span = Math.abs(delta);
  let text;
  if (span < 60) text = "less than a minute";
  else if (span < 3600) text = `${Math.round(span / 60)} min`;
  else if (span < 48 * 3600) text = `${Math.round(span / 3600)} h`;
  else text = `${Math.round(span / 86400)} days`;
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

/** Age of a release from its ISO publication date: "3 days", "2 years". */
export function age(iso) {
  if (!iso) return "unknown";
  const days = (Date.now() - Date.parse(iso)) / 86400000;
  if (!Number.isFinite(days)) return "unknown";
  if (days < 1) return "today";
  if (days < 60) return `${Math.round(days)} day${Math.round(days) === 1 ? "" : "s"}`;
  if (days < 730) return `${Math.round(days / 30)} months`;
  return `${Math.round(days / 365)} years`;
}

/** 1:02:03 or 4:05. */
export function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? `${h}:` : ""}${mm}:${String(s).padStart(2, "0")}`;
}
