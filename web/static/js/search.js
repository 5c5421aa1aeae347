// Search as you type: results from the API replace the list while the address keeps the
// query, so a reload, a shared link or the back button shows the same results (the page
// also works without this script, through ?q=).

import { api, base, page } from "./api.js";
import { h } from "./dom.js";

const DELAY = 300;
const input = document.getElementById("search-input");
const form = document.getElementById("search-form");
const results = document.getElementById("results");
const status = document.getElementById("search-status");
const pager = document.getElementById("pager");
let timer = null;
let inflight = null;
let shown = input ? input.value.trim() : "";
const posters = results ? results.dataset.posters : "";
const noPoster = results ? results.dataset.noPoster : "";

function searchUrl(query, number) {
  const params = new URLSearchParams({ q: query });
  if (number > 1) params.set("page", String(number));
  return `${base}search?${params}`;
}

function item(movie) {
  const rating = movie.vote_count ? `★ ${movie.vote_average.toFixed(1)}` : "Not rated";
  const poster = movie.poster_path ? posters + movie.poster_path.replace(/^\//, "") : noPoster;
  return h(
    "li",
    {},
    h(
      "a",
      { href: page(`movie/${movie.id}`) },
      h("img", { src: poster, alt: movie.title || "Untitled", loading: "lazy", width: 185, height: 278 }),
      h(
        "span",
        { class: "result-text" },
        h("span", { class: "title" }, movie.title || "Untitled"),
        h("span", { class: "year" }, movie.year || "Year unknown"),
        h("span", { class: "rating" }, rating),
      ),
    ),
  );
}

function pagerLinks(query, number, totalPages) {
  pager.replaceChildren();
  if (number > 1) {
    pager.append(
      h("a", { id: "prev-page", class: "button", rel: "prev", href: searchUrl(query, number - 1) }, "← Previous page"),
    );
  }
  if (number < totalPages) {
    pager.append(
      h("a", { id: "next-page", class: "button", rel: "next", href: searchUrl(query, number + 1) }, "Next page →"),
    );
  }
}

function showStatus(text, isError = false) {
  status.replaceChildren(isError ? h("span", { class: "error" }, text) : text);
}

async function run(query) {
  if (inflight) inflight.abort();
  history.replaceState(null, "", query ? searchUrl(query, 1) : `${base}search`);
  document.title = query ? `${query} · Search · Matinee` : "Search · Matinee";
  if (!query) {
    results.replaceChildren();
    pager.replaceChildren();
    showStatus("");
    shown = "";
    return;
  }
  const controller = new AbortController();
  inflight = controller;
  showStatus("Searching…");
  try {
    const body = await api(`/search?${new URLSearchParams({ query })}`, { signal: controller.signal });
    results.replaceChildren(...body.results.map(item));
    pagerLinks(query, body.page, body.total_pages);
    const n = body.total_results;
    showStatus(n ? `${n} result${n === 1 ? "" : "s"}` : `Nothing found for “${query}”.`);
    shown = query;
  } catch (error) {
    if (error.name === "AbortError") return;
    showStatus(error.message, true);
  } finally {
    if (inflight === controller) inflight = null;
  }
}

if (input && results && status && pager) {
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const query = input.value.trim();
      if (query !== shown) run(query);
    }, DELAY);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    run(input.value.trim());
  });
  // Put the cursor at the end of a query carried over from the address.
  const end = input.value.length;
  input.setSelectionRange(end, end);
}
