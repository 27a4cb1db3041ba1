// Freeway's dashboard: plain ES modules served by the gateway itself (no build step, no CDN).
// Every page reads the same admin API as the CLI (`/admin/status`, `/admin/stats`,
// `/admin/requests`, `/admin/accounts`, `/admin/route/explain`); the admin key is entered once
// and kept in this tab's session storage only.

const KEY = "freeway-admin-key";
const view = document.getElementById("view");
const nav = document.getElementById("nav");
let timer = null;

/** Build an element: h("td", {class: "x"}, "text", child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    // through the CSSOM: the page's content security policy allows no style attributes
    else if (k === "style") el.style.cssText = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace an element's content (arrays flattened, empty parts left out). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}
const show = (...children) => fill(view, ...children);

const fmt = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
const ms = (n) => (n === null || n === undefined ? "-" : `${fmt(Math.round(n))} ms`);
const pct = (r) => (r === null || r === undefined ? "-" : `${(r * 100).toFixed(1)} %`);
function span(msLeft) {
  const s = Math.max(0, Math.ceil(msLeft / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}
const time = (t) => new Date(t).toLocaleTimeString();

class Refused extends Error {}

/** Call the admin API with the key; JSON back, or an Error with the gateway's message. */
async function api(path, options = {}) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { ...options, headers: { ...headers, ...(options.headers || {}) } });
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  if (r.status === 401) throw new Refused(body?.error?.message || "The admin key was refused.");
  if (!r.ok) throw new Error(body?.error?.message || `HTTP ${r.status}`);
  return body;
}

function showError(e) {
  if (e instanceof Refused) return signOut("The admin key was refused.");
  const old = view.querySelector(".page-error");
  const msg = h("p", { class: "error page-error", role: "alert" }, String(e.message || e));
  if (old) old.replaceWith(msg); else view.prepend(msg);
}

function every(seconds, fn) {
  clearInterval(timer);
  const run = () => fn().catch(showError);
  run();
  timer = setInterval(run, seconds * 1000);
}

// ---- sign in ----

function signIn(message) {
  clearInterval(timer);
  nav.hidden = true;
  const input = h("input", { id: "admin-key", type: "password", autocomplete: "off", required: true });
  const error = h("p", { class: "error", role: "alert", id: "sign-in-error" }, message || "");
  const form = h("form", { "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("label", { for: "admin-key" }, "Admin key"),
    input,
    h("p", { class: "muted" }, "The gateway's [server] admin_key (FREEWAY_ADMIN_KEY); kept in this tab only."),
    h("button", { type: "submit" }, "Sign in"),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      await api("/admin/status");
      if (!location.hash || location.hash === "#signin") location.hash = "#overview";
      route();
    } catch (e) {
      sessionStorage.removeItem(KEY);
      error.textContent = e instanceof Refused ? "The admin key was refused." : String(e.message || e);
    }
  });
  show(form);
  input.focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  signIn(message);
}

// ---- pages ----

async function overview() {
  show(h("h1", {}, "Overview, last 24 hours"), h("p", { class: "muted" }, "Loading..."));
  every(10, async () => {
    const r = await api("/admin/stats?since=24h");
    const t = r.total;
    const max = Math.max(1, ...r.hourly.map((x) => x.requests));
    const rows = (groups) => groups.map((g) => h("tr", {},
      h("td", {}, g.key), h("td", {}, fmt(g.requests)), h("td", {}, pct(g.success_rate)),
      h("td", {}, fmt(g.prompt_tokens + g.completion_tokens)), h("td", {}, ms(g.latency_p50_ms)),
      h("td", {}, ms(g.latency_p95_ms)), h("td", {}, ms(g.ttft_p50_ms))));
    const table = (title, groups) => h("div", { class: "scroll" }, h("table", {},
      h("caption", { class: "muted" }, title),
      h("thead", {}, h("tr", {}, ["", "Requests", "Success", "Tokens", "p50", "p95", "First byte p50"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows(groups))));
    show(
      h("h1", {}, "Overview, last 24 hours"),
      h("div", { class: "cards" },
        h("div", { class: "card" }, h("b", { id: "total-requests" }, fmt(t.requests)), "requests"),
        h("div", { class: "card" }, h("b", {}, pct(t.success_rate)), "succeeded"),
        h("div", { class: "card" }, h("b", {}, fmt(t.prompt_tokens + t.completion_tokens)), "tokens"),
        h("div", { class: "card" }, h("b", {}, `${ms(t.latency_p50_ms)} / ${ms(t.latency_p95_ms)}`), "latency p50 / p95")),
      h("h2", {}, "Requests per hour"),
      h("div", { class: "hours", role: "img", "aria-label": `Requests per hour, most ${max}` },
        r.hourly.map((x) => h("span", { style: `height:${(100 * x.requests) / max}%`, title: `${time(x.start_ms)}: ${x.requests}` }))),
      h("h2", {}, "By provider"), table("per provider", r.by_provider),
      h("h2", {}, "By model"), table("per model", r.by_model),
      r.errors.length ? h("h2", {}, "Errors") : null,
      r.errors.length ? h("table", {}, h("tbody", {}, r.errors.map((e) => h("tr", {}, h("td", {}, e.error), h("td", {}, fmt(e.requests)))))) : null);
  });
}

function quotaRow(q, now) {
  const share = q.limit ? Math.min(1, q.used / q.limit) : 1;
  const cls = share >= 0.9 ? "bar full" : share >= 0.7 ? "bar high" : "bar";
  const reset = q.resets_at_ms ? `resets in ${span(q.resets_at_ms - now)}` : "";
  return h("div", { class: "quota" },
    h("span", {}, `${q.name.toUpperCase()} ${fmt(q.used)} / ${fmt(q.limit)}`),
    h("div", { class: cls, role: "progressbar", "aria-label": `${q.name} used`, "aria-valuemin": 0,
      "aria-valuemax": q.limit, "aria-valuenow": q.used, "data-quota": q.name },
      h("span", { style: `width:${(share * 100).toFixed(1)}%` })),
    h("span", { class: "muted" }, `${reset}${q.source === "learned" ? " (provider's figure)" : ""}`));
}

function accountState(a, now) {
  const left = a.until_ms ? span(a.until_ms - now) : "";
  const text = {
    ok: "ok",
    cooling: `cooling down, ${left} left: ${a.reason || ""}`,
    disabled: `disabled, re-checked in ${left}: ${a.reason || ""}`,
    off: "off (disabled by an operator)",
  }[a.state] || a.state;
  return h("span", { class: `state-${a.state}` }, text);
}

async function providers() {
  show(h("h1", {}, "Providers and accounts"), h("p", { class: "muted" }, "Loading..."));
  every(2, async () => {
    const s = await api("/admin/status");
    const now = s.server.now_ms;
    show(
      h("h1", {}, "Providers and accounts"),
      h("p", { class: "muted" }, `${s.server.ready ? "Ready" : "Not ready"} · up ${span(s.server.uptime_secs * 1000)} · ${s.server.in_flight} in flight · updated ${time(now)}`),
      s.providers.map((p) => h("section", { class: "provider", "aria-labelledby": `p-${p.id}`, "data-provider": p.id },
        h("h2", { id: `p-${p.id}` }, p.id, h("span", { class: "muted" }, ` · ${p.component} ${p.component_version} · ${p.in_flight} in flight`)),
        h("ul", {}, p.accounts.map((a) => h("li", { "data-account": a.id }, h("strong", {}, a.label), " ", accountState(a, now)))),
        p.pools.map((pool) => h("div", {},
          h("div", { class: "muted" }, `pool ${pool.pool}${pool.scope === "*" ? "" : ` (${pool.scope})`}`),
          pool.quota.map((q) => quotaRow(q, now)))),
        p.models.length ? h("table", {}, h("tbody", {}, p.models.map((m) => h("tr", {},
          h("td", {}, m.model), h("td", {}, `p50 ${ms(m.latency_p50_ms)}`), h("td", {}, `p95 ${ms(m.latency_p95_ms)}`),
          h("td", {}, `first byte ${ms(m.ttft_p50_ms)}`), h("td", {}, `success ${pct(m.success_rate)}`))))) : null,
        p.last_error ? h("p", { class: "muted" }, `last error ${span(now - p.last_error.at_ms)} ago on ${p.last_error.account}: ${p.last_error.message}`) : null)));
  });
}

async function requests() {
  show(h("h1", {}, "Requests"), h("p", { class: "muted" }, "Loading..."));
  every(5, async () => {
    const r = await api("/admin/requests?limit=100");
    show(h("h1", {}, "Requests"), h("p", { class: "muted" }, "Newest first; each row says where the request went."),
      h("div", { class: "scroll" }, h("table", { id: "request-log" },
        h("thead", {}, h("tr", {}, ["Time", "Route", "Account", "Outcome", "Attempts", "Latency", "First byte", "Tokens", "Client"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, r.data.map((x) => h("tr", {},
          h("td", {}, time(x.at_ms)),
          h("td", {}, `${x.provider}/${x.model}`, x.policy ? h("div", { class: "muted" }, `ranked by ${x.policy}`) : null),
          h("td", {}, x.account),
          h("td", { class: x.outcome === "ok" ? "state-ok" : "state-disabled" }, x.error || x.outcome),
          h("td", {}, x.attempts), h("td", {}, ms(x.latency_ms)), h("td", {}, ms(x.first_byte_ms)),
          h("td", {}, `${fmt(x.prompt_tokens)} + ${fmt(x.completion_tokens)}`), h("td", {}, x.client || "anyone")))))));
  });
}

async function playground() {
  clearInterval(timer);
  const models = await fetch("/v1/models").then((r) => r.json()).catch(() => ({ data: [] }));
  const select = h("select", { id: "pg-model" }, (models.data || []).map((m) => h("option", { value: m.id }, m.id)));
  if ([...select.options].some((o) => o.value === "auto")) select.value = "auto";
  const clientKey = h("input", { id: "pg-client-key", type: "password", autocomplete: "off" });
  const prompt = h("textarea", { id: "pg-prompt", rows: 4, required: true });
  const answer = h("div", { class: "answer", id: "pg-answer", "aria-live": "polite" });
  const routeLine = h("p", { class: "muted", id: "pg-route" });
  const send = h("button", { type: "submit" }, "Send");
  const form = h("form", {},
    h("label", { for: "pg-model" }, "Model"), select,
    h("label", { for: "pg-prompt" }, "Prompt"), prompt,
    h("label", { for: "pg-client-key" }, "Client key (only when the gateway has client keys)"), clientKey,
    send);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    send.disabled = true;
    answer.textContent = "";
    routeLine.textContent = "";
    const started = performance.now();
    let first = null;
    try {
      const headers = { "content-type": "application/json" };
      if (clientKey.value.trim()) headers.authorization = `Bearer ${clientKey.value.trim()}`;
      const r = await fetch("/v1/chat/completions", { method: "POST", headers,
        body: JSON.stringify({ model: select.value, stream: true, stream_options: { include_usage: true },
          messages: [{ role: "user", content: prompt.value }] }) });
      const route = r.headers.get("x-freeway-route") || "";
      if (!r.ok) {
        const body = await r.json().catch(() => null);
        throw new Error(body?.error?.message || `HTTP ${r.status}`);
      }
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let usage = null;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          if (!data || data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const text = chunk.choices?.[0]?.delta?.content;
          if (text) {
            if (first === null) first = performance.now() - started;
            answer.textContent += text;
          }
          if (chunk.usage) usage = chunk.usage;
        }
      }
      const tokens = usage ? ` · ${usage.prompt_tokens} + ${usage.completion_tokens} tokens` : "";
      routeLine.textContent = `${route} · first token ${ms(first)} · ${ms(performance.now() - started)}${tokens}`;
    } catch (e) {
      answer.append(h("span", { class: "error", role: "alert" }, String(e.message || e)));
    } finally {
      send.disabled = false;
    }
  });
  show(h("h1", {}, "Playground"), form, h("h2", {}, "Answer"), answer, routeLine);
}

async function explain() {
  clearInterval(timer);
  const prompt = h("textarea", { id: "ex-prompt", rows: 4, required: true });
  const model = h("input", { id: "ex-model", value: "auto" });
  const out = h("div", { id: "ex-result", "aria-live": "polite" });
  const form = h("form", {},
    h("label", { for: "ex-prompt" }, "Prompt"), prompt,
    h("label", { for: "ex-model" }, "Model or alias"), model,
    h("button", { type: "submit" }, "Explain"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const d = await api("/admin/route/explain", { method: "POST",
        body: JSON.stringify({ model: model.value, messages: [{ role: "user", content: prompt.value }] }) });
      fill(out, 
        h("p", {}, `Task ${d.task} (confidence ${d.confidence}) · policy ${d.policy || "-"}${d.error ? ` · ${d.error}` : ""}`),
        d.signals?.length ? h("p", { class: "muted" }, `Evidence: ${d.signals.join(", ")}`) : null,
        h("div", { class: "scroll" }, h("table", { id: "ex-candidates" },
          h("thead", {}, h("tr", {}, ["Rank", "Provider / model", "Score", "Why"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, d.candidates.map((c) => h("tr", {},
            h("td", {}, c.rank ?? "-"), h("td", {}, `${c.provider}/${c.model}`), h("td", {}, c.score ?? "-"),
            h("td", { class: c.dropped ? "muted" : "" }, c.dropped ? `left out: ${c.dropped}` : c.reason || "")))))));
    } catch (e) {
      if (e instanceof Refused) return showError(e);
      fill(out, h("p", { class: "error", role: "alert" }, String(e.message || e)));
    }
  });
  show(h("h1", {}, "Routing explained"), h("p", { class: "muted" }, "How a request would be routed; nothing is sent."), form, out);
}

async function accounts() {
  clearInterval(timer);
  const note = h("p", { id: "acc-note", role: "status" });
  const body = h("tbody", {});
  const load = async () => {
    const list = await api("/admin/accounts");
    body.replaceChildren(...list.data.map((a) => {
      const act = (label, path, method = "POST") => h("button", { type: "button", class: "plain",
        "aria-label": `${label} ${a.label}`, onclick: async () => {
          try {
            const r = await api(`/admin/accounts/${encodeURIComponent(a.id)}${path}`, { method });
            note.textContent = path === "/check" ? `${a.label}: ${r.result}${r.detail ? ` (${r.detail})` : ""}` : `${a.label}: done`;
            await load();
          } catch (e) { note.textContent = `${a.label}: ${e.message}`; if (e instanceof Refused) showError(e); }
        } }, label);
      return h("tr", { "data-account": a.label },
        h("td", {}, a.provider), h("td", {}, a.label), h("td", {}, a.key), h("td", {}, a.enabled ? a.status : "disabled by an operator"),
        h("td", {}, a.enabled ? act("Disable", "/disable") : act("Enable", "/enable"), " ", act("Check", "/check"), " ", act("Remove", "", "DELETE")));
    }));
  };
  const provider = h("input", { id: "acc-provider", required: true });
  const key = h("input", { id: "acc-key", type: "password", autocomplete: "off", required: true });
  const label = h("input", { id: "acc-label" });
  const form = h("form", { "aria-labelledby": "acc-add" },
    h("h2", { id: "acc-add" }, "Add an account"),
    h("label", { for: "acc-provider" }, "Provider"), provider,
    h("label", { for: "acc-key" }, "API key (write-only: it is never shown again)"), key,
    h("label", { for: "acc-label" }, "Label"), label,
    h("button", { type: "submit" }, "Add"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("/admin/accounts", { method: "POST",
        body: JSON.stringify({ provider: provider.value.trim(), key: key.value.trim(), label: label.value.trim() || undefined }) });
      key.value = "";
      note.textContent = `added ${r.label} (${r.key})${r.warnings?.length ? `: ${r.warnings.join("; ")}` : ""}`;
      await load();
    } catch (e) { note.textContent = `not added: ${e.message}`; if (e instanceof Refused) showError(e); }
  });
  show(h("h1", {}, "Accounts"), note,
    h("div", { class: "scroll" }, h("table", { id: "accounts" },
      h("thead", {}, h("tr", {}, ["Provider", "Label", "Key", "Status", ""].map((c) => h("th", { scope: "col" }, c)))), body)),
    form);
  await load();
}

async function components() {
  show(h("h1", {}, "Components"), h("p", { class: "muted" }, "Loading..."));
  every(5, async () => {
    const s = await api("/admin/status");
    const now = s.server.now_ms;
    show(h("h1", {}, "Components"),
      h("p", { class: "muted" }, `Configuration generation ${s.server.config_generation}; a changed file is loaded without a restart.`),
      h("table", { id: "components" },
        h("thead", {}, h("tr", {}, ["Name", "Kind", "Version", "Loaded", "Loads", "Last refusal", "History"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, s.components.map((c) => h("tr", {},
          h("td", {}, c.name), h("td", {}, c.kind), h("td", {}, c.version || "-"),
          h("td", {}, c.loaded_at_ms ? `${span(now - c.loaded_at_ms)} ago` : "not loaded"), h("td", {}, c.loads),
          h("td", { class: c.last_refusal ? "error" : "muted" }, c.last_refusal ? `${span(now - c.last_refusal.at_ms)} ago: ${c.last_refusal.why}` : "none"),
          h("td", {}, h("ul", { class: "history" }, [...c.history].reverse().map((x) =>
            h("li", { class: x.event === "refused" ? "error" : "" }, `${time(x.at_ms)} ${x.event} ${x.detail}`)))))))));
  });
}

const PAGES = { "#overview": overview, "#providers": providers, "#requests": requests, "#playground": playground,
  "#explain": explain, "#accounts": accounts, "#components": components };

function route() {
  if (!sessionStorage.getItem(KEY)) return signIn();
  nav.hidden = false;
  const page = PAGES[location.hash] ? location.hash : "#overview";
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  PAGES[page]().catch(showError);
  view.focus();
}

document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
