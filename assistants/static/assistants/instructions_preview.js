// The live preview of an assistant's rendered instructions on its admin form (docs/admin.md
// "Live preview"). It sends the form as it stands, with the sample values typed in the preview
// (a declared variable left empty renders with its default), to the admin's preview view,
// which renders with the server's one template grammar (config_client.templates), and shows
// the text or the error. No library; no text of its own (the page holds every word).
"use strict";
// The admin puts form media in <head>: start once the form is there.
document.addEventListener("DOMContentLoaded", function () {
  const box = document.getElementById("instructions-preview");
  if (!box) {
    return;
  }
  const form = box.closest("form");
  const samples = box.querySelector(".preview-samples");
  const output = box.querySelector(".preview-output");
  const problem = box.querySelector(".preview-error");
  let timer = null;
  let asked = 0;

  function declaredVariables() {
    const declared = [];
    form.querySelectorAll(".variables-rows tr.variable-row").forEach(function (row) {
      const name = row.querySelector("input[name$='-name']").value.trim();
      const deleted = row.querySelector("input[name$='-DELETE']").checked;
      if (name && !deleted) {
        declared.push({ name: name, fallback: row.querySelector("input[name$='-default']").value });
      }
    });
    return declared;
  }

  // One input per declared variable, keeping what was typed in those that stay.
  function syncSamples() {
    const kept = {};
    samples.querySelectorAll("input").forEach(function (input) {
      kept[input.dataset.variable] = input;
    });
    const rows = declaredVariables().map(function (variable) {
      let input = kept[variable.name];
      if (!input) {
        input = document.createElement("input");
        input.type = "text";
        input.name = "sample-" + variable.name;
        input.dataset.variable = variable.name;
        input.id = "preview-sample-" + variable.name;
      }
      input.placeholder = variable.fallback;
      const label = document.createElement("label");
      label.htmlFor = input.id;
      label.textContent = variable.name;
      const row = document.createElement("div");
      row.className = "preview-sample";
      row.append(label, input);
      return row;
    });
    samples.replaceChildren.apply(samples, rows);
  }

  async function refresh() {
    syncSamples();
    const body = new FormData(form);
    const mine = ++asked;
    let answer;
    try {
      const response = await fetch(box.dataset.url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": body.get("csrfmiddlewaretoken") },
      });
      answer = await response.json();
    } catch (error) {
      answer = { error: String(error) };
    }
    if (mine !== asked) {
      return; // a later edit asked again
    }
    output.textContent = answer.instructions === undefined ? "" : answer.instructions;
    problem.textContent = answer.error || "";
    box.dataset.state = answer.error ? "error" : "rendered";
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  refresh();
});
