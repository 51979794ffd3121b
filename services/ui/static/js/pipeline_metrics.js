// The Control Center's "Pipeline" panel: the figures each service exposes on /metrics (read for
// us by GET /api/status/metrics), summed where several processes report the same thing.
import { api } from "./api.js";
import { el, fillBody } from "./dom.js";

const all = (services, name) => Object.values(services).flatMap((s) => s.samples.filter((x) => x.name === name));
const total = (samples) => samples.reduce((sum, x) => sum + x.value, 0);
const byLabel = (samples, label) => {
  const sums = {};
  for (const x of samples) sums[x.labels[label]] = (sums[x.labels[label]] ?? 0) + x.value;
  return Object.entries(sums).sort(([a], [b]) => String(a).localeCompare(String(b)));
};
const listed = (pairs, unit = "") => pairs.length ? pairs.map(([k, v]) => `${k}: ${fmt(v)}${unit}`).join(" · ") : "—";
const fmt = (v) => (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(1));
const mean = (services, family, scale = 1) => {
  const count = total(all(services, `${family}_count`));
  return count ? `${fmt((total(all(services, `${family}_sum`)) / count) * scale)}` : "—";
};

function rows(services) {
  const down = Object.entries(services).filter(([, s]) => !s.up).map(([name]) => name);
  return [
    ["webhooks", "Webhooks answered, by status", listed(byLabel(all(services, "jt_webhook_answers_total"), "code"))],
    ["accept", "Webhook accept time, mean", `${mean(services, "jt_webhook_accept_seconds", 1000)} ms`],
    ["batches", "Engine batches", fmt(total(all(services, "jt_engine_batch_size_count")))],
    ["batch-size", "Engine batch size, mean", mean(services, "jt_engine_batch_size")],
    ["batch-time", "Engine batch time, mean", `${mean(services, "jt_engine_batch_seconds", 1000)} ms`],
    ["lag", "Stream lag (unread entries)", listed(byLabel(all(services, "jt_stream_lag"), "stream"))],
    ["pending", "Stream entries pending", listed(byLabel(all(services, "jt_stream_pending"), "stream"))],
    ["orders", "Orders answered, by outcome", listed(byLabel(all(services, "jt_orders_total"), "status"))],
    ["tokens", "Broker requests left this minute", listed(byLabel(all(services, "jt_limiter_tokens_left"), "user"))],
    ["penalties", "Broker penalties", listed(byLabel(all(services, "jt_limiter_penalties_total"), "user"))],
    ["feed", "Price feed connected", total(all(services, "jt_feed_connected")) ? "yes" : "no"],
    ["down", "Not answering /metrics", down.length ? down.join(", ") : "none"],
  ];
}

export async function loadPipeline() {
  const { services } = await api("/api/status/metrics", { quiet: true });
  fillBody(document.querySelector("#pipeline tbody"), rows(services).map(([key, label, value]) =>
    el("tr", { dataset: { metric: key } }, el("th", { scope: "row" }, label), el("td", { className: "num" }, value))));
}
