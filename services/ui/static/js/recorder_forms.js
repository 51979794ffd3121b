// The recorder dialogs: create/edit settings, and the webhook URL with both alert templates.
import { api, confirmDialog, copyText, toast } from "./api.js";
import { ExitPlanEditor } from "./exit_plan_editor.js";
import { clearFieldErrors, showFormError } from "./forms.js";

function optionalInt(text) {
  const trimmed = text.trim();
  return trimmed === "" ? null : Number(trimmed);
}

/** Create or edit a recorder; `onSaved(recorder, created)` runs after the API accepted it. */
export class RecorderDialog {
  constructor(onSaved) {
    this.dialog = document.getElementById("recorder-dialog");
    this.form = document.getElementById("recorder-form");
    this.error = document.getElementById("recorder-error");
    this.onSaved = onSaved;
    this.editing = null;
    this.exits = new ExitPlanEditor(this.form);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    for (const button of this.dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => this.dialog.close());
    }
  }

  open(recorder = null) {
    this.editing = recorder;
    this.form.reset();
    this.error.hidden = true;
    clearFieldErrors(this.form);
    const f = this.form.elements;
    if (recorder) {
      f.name.value = recorder.name;
      f.default_qty.value = recorder.default_qty;
      f.max_qty.value = recorder.max_qty;
      f.tp_ticks.value = recorder.tp_ticks ?? "";
      f.sl_ticks.value = recorder.sl_ticks ?? "";
      f.on_opposite.value = recorder.on_opposite;
      f.allow_dca.checked = recorder.allow_dca;
      f.enabled.checked = recorder.enabled;
      f.allow_delayed_exits.checked = recorder.allow_delayed_exits;
    }
    this.exits.load(recorder?.exits ?? null);
    document.getElementById("recorder-dialog-title").textContent = recorder ? `Edit ${recorder.name}` : "New recorder";
    document.getElementById("recorder-save").textContent = recorder ? "Save changes" : "Create recorder";
    this.dialog.showModal();
    f.name.focus();
  }

  body() {
    const f = this.form.elements;
    const qty = f.default_qty.value.trim();
    const maxQty = f.max_qty.value.trim();
    return {
      name: f.name.value,
      default_qty: qty === "" ? null : Number(qty),
      max_qty: maxQty === "" ? null : Number(maxQty),
      ...this.exits.body(optionalInt), // exits, or tp_ticks and sl_ticks: each clears the other
      on_opposite: f.on_opposite.value,
      allow_dca: f.allow_dca.checked,
      enabled: f.enabled.checked,
      allow_delayed_exits: f.allow_delayed_exits.checked,
    };
  }

  async save() {
    const button = document.getElementById("recorder-save");
    button.disabled = true;
    this.error.hidden = true;
    clearFieldErrors(this.form);
    try {
      const created = !this.editing;
      const saved = created
        ? await api("/api/recorders", { method: "POST", body: this.body(), quiet: true })
        : await api(`/api/recorders/${this.editing.id}`, { method: "PUT", body: this.body(), quiet: true });
      this.dialog.close();
      toast(created ? `Recorder ${saved.name} created.` : `Recorder ${saved.name} saved.`, "success", 2500);
      this.onSaved(saved, created);
    } catch (error) {
      // A field's sentence shows beside its input ("Take-profit (ticks) must be ..."); the rest,
      // e.g. "exits.targets[1]: legs must be in increasing distance.", above the form.
      showFormError(this.form, error, { rest: this.error });
    } finally {
      button.disabled = false;
    }
  }
}

/** The webhook URL, the TradingView message templates, and a new URL on request. */
export class WebhookDialog {
  constructor(onRotated) {
    this.dialog = document.getElementById("webhook-dialog");
    this.onRotated = onRotated;
    this.recorder = null;
    for (const button of this.dialog.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => {
        copyText(this.dialog.querySelector(button.dataset.copy).value, button.dataset.what);
      });
    }
    for (const button of this.dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => this.dialog.close());
    }
    document.getElementById("rotate-token").addEventListener("click", () => this.rotate());
  }

  async open(recorder) {
    this.recorder = recorder;
    const setup = await api(`/api/recorders/${recorder.id}/webhook`);
    document.getElementById("webhook-dialog-title").textContent = `Webhook of ${recorder.name}`;
    document.getElementById("webhook-url").value = setup.webhook_url;
    document.getElementById("template-indicator").value = setup.templates.indicator;
    document.getElementById("template-strategy").value = setup.templates.strategy;
    document.getElementById("template-levels").value = setup.templates.levels;
    document.getElementById("template-update").value = setup.templates.update;
    document.getElementById("webhook-how-to").textContent = setup.how_to;
    if (!this.dialog.open) this.dialog.showModal();
  }

  async rotate() {
    const yes = await confirmDialog({
      title: "Make a new webhook URL?",
      message: `The current URL of ${this.recorder.name} stops working at once; every TradingView alert that uses it must get the new one.`,
      confirm: "Make a new URL", danger: true,
    });
    if (!yes) return;
    await api(`/api/recorders/${this.recorder.id}/rotate-token`, { method: "POST", body: {} });
    toast("New webhook URL made; update your TradingView alerts.", "success");
    await this.open(this.recorder);
    this.onRotated();
  }
}
