"use strict";

// The page asks /predict for every genre's score and draws them as bars.
const form = document.getElementById("predict-form");
const button = document.getElementById("predict");
const errorBox = document.getElementById("error");
const result = document.getElementById("result");
const bars = document.getElementById("bars");
const chosen = document.getElementById("genres");
let genreCount = 20;

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  result.hidden = true;
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail) && body.detail.length) {
    return body.detail[0].msg.replace(/^Value error, /, "");
  }
  return `the server answered ${status}`;
}

function draw(prediction) {
  bars.replaceChildren();
  for (const { genre, score } of prediction.top) {
    const item = document.createElement("li");
    const chosenGenre = prediction.genres.includes(genre);
    item.className = chosenGenre ? "bar chosen" : "bar";
    const percent = Math.round(score * 100);
    item.innerHTML =
      '<span class="name"></span><span class="track" role="meter" aria-valuemin="0" ' +
      'aria-valuemax="100"><span class="fill"></span></span><span class="value"></span>';
    item.querySelector(".name").textContent = genre;
    const meter = item.querySelector(".track");
    meter.setAttribute("aria-valuenow", String(percent));
    meter.setAttribute("aria-label", `${genre} score${chosenGenre ? ", predicted" : ""}`);
    item.querySelector(".fill").style.width = `${percent}%`;
    item.querySelector(".value").textContent = `${percent}%`;
    bars.append(item);
  }
  chosen.textContent = prediction.genres.join(", ");
  errorBox.hidden = true;
  result.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const description = form.description.value.trim();
  if (!description) {
    showError("Type a description first.");
    form.description.focus();
    return;
  }
  button.disabled = true;
  try {
    const response = await fetch("/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ description, title: form.title.value.trim(), top_k: genreCount }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      showError(detailOf(body, response.status));
      return;
    }
    draw(body);
  } catch (error) {
    showError("Could not reach the server; is it running?");
  } finally {
    button.disabled = false;
  }
});

fetch("/model")
  .then((response) => (response.ok ? response.json() : Promise.reject(response)))
  .then((model) => {
    genreCount = Math.min(model.genres.length, 20);
    document.getElementById("model-info").textContent =
      `model: ${model.kind}, ${model.genres.length} genres`;
  })
  .catch(() => {
    document.getElementById("model-info").textContent = "model not loaded";
  });
