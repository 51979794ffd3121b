// The exit-plan part of the recorder form (docs/contract.md §3b): the simple/plan choice, the
// plan's distances and legs, and a live preview whose levels come from the API, never from here.
import { ApiError, api } from "./api.js";
import { el } from "./dom.js";
import { price, qty } from "./format.js";
import { clearFieldErrors, showFormError } from "./forms.js";

const MAX_LEGS = 3;
const PREVIEW_DELAY_MS = 300;
const UNIT_LABELS = { ticks: "ticks", points: "points", usd: "USD", percent: "%" };
// The preview's API fields and the sample inputs that hold them.
const PREVIEW_INPUTS = { symbol: "preview_symbol", side: "preview_side", price: "preview_price", qty: "preview_qty" };

/** "40 ticks", "12.5 points", "$50", "0.2%": one distance of a saved plan, as a recorder row shows it. */
export function distanceText(distance) {
  if (!distance) return "—";
  const [[unit, value]] = Object.entries(distance).filter(([key]) => key !== "qty");
  if (unit === "usd") return `$${value}`;
  if (unit === "percent") return `${value}%`;
  return `${value} ${unit}`;
}

/** The value and unit of one distance object ({ticks: 40}); qty is not a unit. */
function unitOf(distance) {
  return Object.keys(distance).find((key) => key in UNIT_LABELS);
}

function numberOrText(text) {
  // An unreadable entry goes to the API as it is, so its sentence names the field.
  const value = Number(text);
  return Number.isFinite(value) ? value : text;
}

export class ExitPlanEditor {
  constructor(form) {
    this.form = form;
    this.f = form.elements;
    this.plan = document.getElementById("exit-plan");
    this.simple = document.getElementById("simple-exits");
    this.legs = document.getElementById("plan-legs");
    this.error = document.getElementById("plan-error");
    this.preview = document.getElementById("plan-preview");
    this.previewEmpty = document.getElementById("plan-preview-empty");
    this.timer = null;
    this.asked = 0; // the newest preview request; older answers are dropped
    document.getElementById("plan-add-leg").addEventListener("click", () => {
      this.addLeg({ ticks: "" });
      this.legs.querySelector("li:last-child input[data-role=distance]").focus();
    });
    this.legs.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-remove]");
      if (!button) return;
      button.closest("li").remove();
      this.renumber();
      this.schedulePreview();
    });
    form.addEventListener("change", (event) => this.changed(event.target));
    form.addEventListener("input", (event) => {
      if (this.plan.contains(event.target)) this.schedulePreview();
    });
  }

  changed(target) {
    if (target.name === "exit_mode") this.showMode();
    else if (target.name === "plan_unit") this.setUnit(target.value);
    else if (target.name === "plan_breakeven" || target.name === "plan_trail") this.showOptional();
    else if (!this.plan.contains(target)) return;
    this.schedulePreview();
  }

  get mode() {
    return this.form.querySelector("input[name=exit_mode]:checked")?.value ?? "simple";
  }

  /** Fill the editor from a recorder's `exits` (null: the simple TP/SL form). */
  load(exits) {
    this.legs.replaceChildren();
    this.error.hidden = true;
    this.form.querySelector(`input[name=exit_mode][value=${exits ? "plan" : "simple"}]`).checked = true;
    const plan = exits ?? { targets: [{ ticks: "", qty: 1 }, { ticks: "" }] };
    this.distanceInto(this.f.plan_stop, plan.stop);
    for (const leg of plan.targets ?? [{ ticks: "" }]) this.addLeg(leg);
    this.f.plan_breakeven.checked = Boolean(plan.breakeven);
    this.distanceInto(this.f.plan_be_trigger, plan.breakeven?.trigger);
    this.distanceInto(this.f.plan_be_offset, plan.breakeven?.offset ?? { ticks: 0 });
    this.f.plan_trail.checked = Boolean(plan.trail);
    this.distanceInto(this.f.plan_trail_trigger, plan.trail?.trigger);
    this.distanceInto(this.f.plan_trail_distance, plan.trail?.distance);
    const units = new Set(this.distanceInputs().filter((i) => i.value !== "").map((i) => i.dataset.unit));
    const unit = units.size > 1 ? "mixed" : [...units][0] ?? "ticks";
    this.f.plan_unit.value = unit;
    if (unit !== "mixed") this.setUnit(unit);
    this.showMode();
    this.showOptional();
    this.renumber();
    this.schedulePreview(0);
  }

  distanceInto(input, distance) {
    const unit = distance ? unitOf(distance) : this.f.plan_unit.value === "mixed" ? "ticks" : this.f.plan_unit.value;
    input.value = distance ? distance[unit] : "";
    this.markUnit(input, unit);
  }

  markUnit(input, unit) {
    input.dataset.unit = unit;
    input.step = unit === "ticks" ? "1" : "any";
    input.closest(".unit-input").querySelector(".unit").textContent = UNIT_LABELS[unit];
  }

  distanceInputs() {
    return [...this.plan.querySelectorAll("input[data-distance]")];
  }

  /** The units chooser applies to every distance of the plan (values are kept as typed). */
  setUnit(unit) {
    for (const input of this.distanceInputs()) this.markUnit(input, unit);
  }

  addLeg(leg) {
    const unit = unitOf(leg) ?? "ticks";
    const distance = el("input", {
      type: "number", min: "0", step: "any", inputMode: "decimal", value: String(leg[unit] ?? ""),
      dataset: { distance: "", role: "distance" },
    });
    const contracts = el("input", {
      type: "number", min: "1", step: "1", inputMode: "numeric", value: String(leg.qty ?? 1),
      dataset: { role: "qty" },
    });
    const item = el("li", { className: "leg" },
      el("label", {}, el("span", { className: "leg-name" }, "Target"),
        el("span", { className: "unit-input" }, distance, el("span", { className: "unit" }))),
      el("label", { className: "leg-qty" }, "Contracts", contracts),
      el("span", { className: "leg-rest" }, "the rest"),
      el("button", { type: "button", className: "btn btn-ghost btn-sm danger", dataset: { remove: "" }, title: "Remove this target" }, "✕"),
    );
    this.legs.append(item);
    const chosen = this.f.plan_unit.value;
    this.markUnit(distance, leg[unit] === "" && chosen !== "mixed" ? chosen : unit);
    this.renumber();
  }

  /** Names the legs 1..n; only the last one shows "the rest"; 1 to 3 legs. */
  renumber() {
    const items = [...this.legs.children];
    items.forEach((item, i) => {
      const last = i === items.length - 1;
      item.querySelector(".leg-name").textContent = `Target ${i + 1}`;
      item.querySelector(".leg-qty").hidden = last;
      item.querySelector(".leg-rest").hidden = !last;
      const remove = item.querySelector("[data-remove]");
      remove.hidden = items.length === 1;
      remove.setAttribute("aria-label", `Remove target ${i + 1}`);
    });
    document.getElementById("plan-add-leg").hidden = items.length >= MAX_LEGS;
  }

  showMode() {
    const plan = this.mode === "plan";
    this.plan.hidden = !plan;
    this.simple.hidden = plan;
  }

  showOptional() {
    document.getElementById("plan-breakeven").hidden = !this.f.plan_breakeven.checked;
    document.getElementById("plan-trail").hidden = !this.f.plan_trail.checked;
  }

  /** The `exits` object the form describes; distances left empty are left out. */
  exits() {
    const distance = (input) => (input.value.trim() === "" ? null : { [input.dataset.unit]: numberOrText(input.value.trim()) });
    const out = {};
    const stop = distance(this.f.plan_stop);
    if (stop) out.stop = stop;
    const items = [...this.legs.children];
    const targets = items.map((item, i) => {
      const leg = distance(item.querySelector("input[data-role=distance]"));
      if (!leg) return null;
      if (i < items.length - 1) leg.qty = numberOrText(item.querySelector("input[data-role=qty]").value.trim());
      return leg;
    });
    if (targets.some(Boolean)) out.targets = targets.map((leg) => leg ?? {});
    if (this.f.plan_breakeven.checked) {
      out.breakeven = { trigger: distance(this.f.plan_be_trigger), offset: distance(this.f.plan_be_offset) ?? { ticks: 0 } };
    }
    if (this.f.plan_trail.checked) {
      out.trail = { trigger: distance(this.f.plan_trail_trigger), distance: distance(this.f.plan_trail_distance) };
    }
    return out;
  }

  /** What the save sends for the exits: the plan, or tp/sl ticks (each clears the other). */
  body(optionalInt) {
    if (this.mode === "plan") return { exits: this.exits() };
    return { exits: null, tp_ticks: optionalInt(this.f.tp_ticks.value), sl_ticks: optionalInt(this.f.sl_ticks.value) };
  }

  schedulePreview(delay = PREVIEW_DELAY_MS) {
    clearTimeout(this.timer);
    if (this.mode !== "plan") return;
    this.timer = setTimeout(() => this.showPreview(), delay);
  }

  async showPreview() {
    const exits = this.exits();
    const asked = ++this.asked;
    if (!Object.keys(exits).length) {
      this.showLevels(null, null);
      return;
    }
    const body = {
      exits,
      symbol: this.f.preview_symbol.value,
      side: this.f.preview_side.value,
      price: numberOrText(this.f.preview_price.value.trim()),
      qty: numberOrText(this.f.preview_qty.value.trim()),
    };
    try {
      const levels = await api("/api/exit-plans/preview", { method: "POST", body, quiet: true });
      if (asked === this.asked) this.showLevels(levels, null);
    } catch (error) {
      if (asked !== this.asked) return;
      // A wrong sample value is said beside it (without taking the focus from what the user
      // types); the plan's own rule, e.g. "exits.targets[1]: ...", on the line above the levels.
      const rest = showFormError(this.plan, error, { names: PREVIEW_INPUTS, rest: this.error, focus: false });
      this.showLevels(null, rest || (error instanceof ApiError ? "" : String(error)), true);
    }
  }

  /** The preview's levels, or the API's sentence that says what is wrong with the plan. */
  showLevels(levels, error, failed = Boolean(error)) {
    if (!failed) clearFieldErrors(this.plan);
    this.error.textContent = error ?? "";
    this.error.hidden = !error;
    this.previewEmpty.hidden = Boolean(levels || failed);
    this.preview.hidden = !levels;
    this.plan.dataset.preview = levels ? "ok" : failed ? "error" : "empty"; // the browser tests wait for this
    if (!levels) return;
    const rows = levels.targets.map((leg, i) => [
      `Target ${i + 1}`, `${price(leg.level)} × ${qty(leg.allotted)} contract${leg.allotted === 1 ? "" : "s"}`, `target-${i + 1}`,
    ]);
    rows.push(["Stop", levels.stop === null ? "none" : price(levels.stop), "stop"]);
    if (levels.breakeven) {
      rows.push(["Break-even", `at ${price(levels.breakeven.trigger)} the stop moves to ${price(levels.breakeven.stop)}`, "breakeven"]);
    }
    if (levels.trail) {
      rows.push(["Trailing", `from ${price(levels.trail.trigger)}, ${qty(levels.trail.distance)} points behind the best price`, "trail"]);
    }
    rows.push(["Tick", `${qty(levels.tick_size)} · $${qty(levels.point_value)} a point`, "tick"]);
    this.preview.replaceChildren(...rows.flatMap(([name, text, key]) => [
      el("dt", {}, name), el("dd", { className: "num", dataset: { level: key } }, text),
    ]));
  }
}
